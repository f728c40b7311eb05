//! The access rules: refusing to start open beyond loopback, the operator token file,
//! operators' actions logged, what a customer may act for.

use super::*;

async fn start(args: &AuthArgs, address: &str) -> anyhow::Result<Auth> {
    let stop = tokio_util::sync::CancellationToken::new();
    let auth = Auth::start(args, "order-service", address.parse().unwrap(), &stop).await;
    stop.cancel();
    auth
}

#[tokio::test]
async fn a_service_beyond_loopback_without_authentication_refuses_to_start_unless_told() {
    let none = AuthArgs::default();
    for loopback in ["127.0.0.1:8080", "[::1]:8080"] {
        assert!(start(&none, loopback).await.is_ok(), "{loopback}");
    }
    let err = start(&none, "0.0.0.0:8080").await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("beyond loopback"), "{text}");
    assert!(
        text.contains("operator routes") && text.contains("customer routes"),
        "{text}"
    );
    assert!(text.contains("--insecure-no-auth"), "{text}");

    let operators_only = AuthArgs {
        operator_token_hashes: vec![Entry::for_token("ops", &operators::new_token())],
        ..Default::default()
    };
    let err = start(&operators_only, "10.1.2.3:8080")
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("customer routes") && !text.contains("operator routes"),
        "{text}"
    );

    let told = AuthArgs {
        insecure_no_auth: true,
        ..Default::default()
    };
    assert!(start(&told, "0.0.0.0:8080").await.is_ok());
}

#[tokio::test]
async fn a_missing_operator_token_file_stops_the_start_with_its_path() {
    let args = AuthArgs {
        operator_tokens_file: Some("/nonexistent/operators".into()),
        ..Default::default()
    };
    let err = start(&args, "127.0.0.1:8080").await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("/nonexistent/operators"),
        "{err:#}"
    );
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_operators_change_is_logged_with_their_name_and_a_refused_one_reaches_no_handler() {
    use tower::ServiceExt;
    let token = operators::new_token();
    let args = AuthArgs {
        operator_token_hashes: vec![Entry::for_token("alice-ops", &token)],
        ..Default::default()
    };
    let auth = start(&args, "127.0.0.1:8080").await.unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let routes = Routes::default().operators(Router::new().route(
        "/admin/thing",
        axum::routing::put(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "done" }
        }),
    ));
    let app = auth.apply(routes);
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let put = |token: Option<&str>| {
        let mut request = axum::http::Request::put("/admin/thing");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(axum::body::Body::empty()).unwrap()
    };
    let refused = app.clone().oneshot(put(None)).await.unwrap();
    assert_eq!(refused.status(), 401);
    let refused = app.clone().oneshot(put(Some("oo_wrong"))).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no handler ran"
    );
    let done = app.oneshot(put(Some(&token))).await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("operator action"))
        .unwrap_or_else(|| panic!("{log}"));
    for part in ["alice-ops", "PUT", "/admin/thing", "200"] {
        assert!(line.contains(part), "{line}");
    }
    assert!(!log.contains(&token), "the token is not logged");
}

#[test]
fn a_customer_may_act_only_for_themself_and_others_for_anyone() {
    assert!(Caller::Customer(7).may_act_for(7).is_ok());
    let refused = Caller::Customer(7).may_act_for(8).unwrap_err();
    assert_eq!(
        (refused.status, refused.type_.as_str()),
        (403, "/problems/forbidden")
    );
    assert!(Caller::Operator("ops".into()).may_act_for(8).is_ok());
    assert!(Caller::Anyone.may_act_for(8).is_ok());
    assert!(Caller::Customer(7).may_see(7) && !Caller::Customer(7).may_see(8));
}
