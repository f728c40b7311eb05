//! Tests of the webhook channel: the resolver that keeps webhooks off addresses they may not
//! reach, what is refused or retried when sent, signatures and secrets.

use super::*;

/// A resolver that answers `addr` for every name.
fn answering(addr: &str, destinations: Destinations) -> CheckedResolver {
    let addr: std::net::SocketAddr = format!("{addr}:0").parse().unwrap();
    CheckedResolver {
        destinations,
        lookup: std::sync::Arc::new(move |_| Box::pin(async move { Ok(vec![addr]) })),
        label: "webhook",
    }
}

#[tokio::test]
async fn a_public_looking_name_that_resolves_inside_is_refused_when_sent() {
    for inside in [
        "10.0.0.7",
        "127.0.0.1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:192.168.0.1]",
    ] {
        let resolver = answering(inside, Destinations::public_only());
        let refused = resolver
            .checked("hooks.example.com".into())
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, Unreachable::Refused(why) if why.contains("must point at a public address")),
            "{inside}: {refused:?}"
        );
    }
    let public = answering("93.184.215.14", Destinations::public_only());
    assert_eq!(
        public
            .checked("hooks.example.com".into())
            .await
            .unwrap()
            .len(),
        1
    );
    // An opened network passes.
    let opened =
        Destinations::allowing(vec![
            contracts::destinations::Network::parse("10.0.0.0/8").unwrap()
        ]);
    assert!(answering("10.0.0.7", opened)
        .checked("hooks.internal.example".into())
        .await
        .is_ok());
}

/// The webhook channel, its names resolved by `resolver`'s lookup.
fn channel(resolver: CheckedResolver) -> WebhookChannel {
    let args = WebhookArgs {
        webhook_secret: Some("a-secret-of-at-least-16-bytes".into()),
        webhook_timeout_ms: 5_000,
        destinations: Default::default(),
    };
    WebhookChannel::resolving_with(&args, resolver.lookup)
        .unwrap()
        .expect("a secret is set")
}

fn to(recipient: &str) -> Outgoing {
    Outgoing {
        delivery_id: 1,
        order_id: 1,
        channel: "webhook".into(),
        recipient: recipient.into(),
        idempotency_key: "delivery-1".into(),
        kind: "RESERVED".into(),
        subject: String::new(),
        text: String::new(),
        html: String::new(),
        payload: "{}".into(),
        trace: String::new(),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_name_that_resolves_only_inside_fails_at_once_as_refused_not_as_could_not_connect() {
    for inside in ["127.0.0.1", "10.0.0.7", "[::1]", "[2002:7f00:1::]"] {
        let webhooks = channel(answering(inside, Destinations::public_only()));
        let sent = webhooks.send(&to("http://hooks.example.com/x")).await;
        match sent {
            Err(SendError::Permanent(why)) => assert!(
                why.contains("the destination address is not allowed")
                    && why.contains("must point at a public address"),
                "{inside}: {why}"
            ),
            other => panic!("{inside}: {other:?}, not a permanent refusal"),
        }
    }
}

#[tokio::test]
async fn a_url_on_port_0_is_refused_when_sent_not_retried() {
    let webhooks = channel(answering("93.184.215.14", Destinations::public_only()));
    for url in ["http://hooks.example.com:0/x", "http://93.184.215.14:0/x"] {
        let sent = webhooks.send(&to(url)).await;
        assert!(
            matches!(&sent, Err(SendError::Permanent(why)) if why.contains("port 0")),
            "{url}: {sent:?}"
        );
    }
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried() {
    let lookup: Lookup = std::sync::Arc::new(|_| {
        Box::pin(async {
            Err::<Vec<std::net::SocketAddr>, _>(std::io::Error::other("no such host"))
        })
    });
    let webhooks = channel(CheckedResolver {
        destinations: Destinations::public_only(),
        lookup,
        label: "webhook",
    });
    let sent = webhooks.send(&to("http://hooks.example.com/x")).await;
    match sent {
        Err(SendError::Transient(why)) => assert!(
            why.contains("webhook host hooks.example.com: no such host"),
            "{why}"
        ),
        other => panic!("{other:?}, not a transient failure"),
    }
}

/// The example of the Standard Webhooks specification's reference libraries.
#[test]
fn signatures_match_the_standard_webhooks_reference_example() {
    let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = br#"{"test": 2432232314}"#;
    assert_eq!(
        signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn secrets_without_the_prefix_are_used_as_their_bytes() {
    assert_eq!(secret_key("plain-secret").unwrap(), b"plain-secret");
    assert!(secret_key("whsec_not base64!").is_err());
}
