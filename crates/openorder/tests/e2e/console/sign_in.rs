//! Signing in to a console given operator tokens: every page asks for it, only an
//! operator's token lets one in, and ten wrong tokens from one address make the eleventh
//! sign-in from there refused (429) while another address still signs in.

use super::{Answer, Browser};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use axum::http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_given_operator_tokens_lets_in_only_an_operator_who_signs_in() {
    let Some(stack) =
        Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default()).await
    else {
        return;
    };
    let token = platform::auth::operators::new_token();
    let entry = platform::auth::operators::Entry::for_token("alice", &token);
    let mut browser = Browser::new(&stack, vec![entry]).await;
    let page = browser.get("/topics").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/sign-in?next=%2Ftopics"));
    assert_eq!(
        browser.get("/api/overview").await.status,
        StatusCode::UNAUTHORIZED
    );
    let form = browser.get("/sign-in?next=%2Ftopics").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    let wrong = browser
        .post(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("token", "oo_not-a-token"),
                ("next", "/topics"),
            ],
            None,
        )
        .await;
    wrong.assert_shows("not an operator token");
    let signed = browser
        .post(
            "/sign-in",
            &[("csrf", &csrf), ("token", &token), ("next", "/topics")],
            None,
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/topics"));
    let page = browser.get("/topics").await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_shows("signed in as <b>alice</b>");
    assert_eq!(browser.get("/api/overview").await.status, StatusCode::OK);
    stack.stop().await;
}

/// A console whose one operator is `alice` with `token`, and no stack behind it: signing in
/// touches neither the brokers nor the services.
async fn console_of_alice(token: &str) -> axum::Router {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        console: console::ConsoleArgs,
    }
    let entry = platform::auth::operators::Entry::for_token("alice", token);
    let line = entry.line();
    let cli = Cli::try_parse_from(["console", "--operator-token-hash", line.as_str()]).unwrap();
    console::router(console::Console::new(&cli.console).await.unwrap())
}

/// Signs in at `browser`'s console with `token`: the form's page, then its POST.
async fn sign_in(browser: &mut Browser, token: &str) -> Answer {
    let form = browser.get("/sign-in?next=%2Ftopics").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    browser
        .post(
            "/sign-in",
            &[("csrf", &csrf), ("token", token), ("next", "/topics")],
            None,
        )
        .await
}

#[tokio::test]
async fn after_ten_wrong_tokens_from_one_address_the_eleventh_sign_in_is_refused_429_and_another_address_still_signs_in(
) {
    let token = platform::auth::operators::new_token();
    let router = console_of_alice(&token).await;
    let mut guesser = Browser {
        router: router.clone(),
        cookie: None,
        peer: Some("203.0.113.50:40000".parse().unwrap()),
    };
    for attempt in 1..=10 {
        let wrong = sign_in(&mut guesser, "oo_not-a-token").await;
        assert_eq!(wrong.status, StatusCode::OK, "attempt {attempt}");
        wrong.assert_shows_with("not an operator token", &format!("attempt {attempt}"));
    }
    let refused = sign_in(&mut guesser, "oo_not-a-token").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.content_type.as_deref(),
        Some("application/problem+json")
    );
    refused.assert_shows("too-many-sign-in-attempts");
    let retry: u64 = refused
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Refused without the token being looked at: the right one is refused too, from there
    // (another port of the same address is the same client).
    guesser.peer = Some("203.0.113.50:40001".parse().unwrap());
    let right_but_refused = sign_in(&mut guesser, &token).await;
    assert_eq!(right_but_refused.status, StatusCode::TOO_MANY_REQUESTS);

    // Another address signs in with the right token.
    let mut operator = Browser {
        router,
        cookie: None,
        peer: Some("198.51.100.20:50000".parse().unwrap()),
    };
    let signed = sign_in(&mut operator, &token).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/topics"));
    // Over plain HTTP, with no proxy trusted: the cookie is not `Secure`.
    let cookie = signed.set_cookie.expect("a new session's cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let page = operator.get("/sign-in").await;
    page.assert_shows("signed in as <b>alice</b>");
}
