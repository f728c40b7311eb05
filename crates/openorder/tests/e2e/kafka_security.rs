//! The services reach Apache Kafka over TLS and SASL as managed Kafka services require:
//! `scripts/kafka.sh` gives the test broker a SASL_SSL listener (SCRAM-SHA-512) and an SSL
//! listener that requires a client certificate, with certificates from `scripts/tls.sh`.
//! The whole flow runs over each; a wrong password or an untrusted CA stops start-up with
//! the broker's reason.

use std::path::PathBuf;
use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use platform::kafka::{KafkaSecurityArgs, SaslMechanism, Secret, SecurityProtocol};

struct Secured {
    tls: PathBuf,
    sasl_ssl: String,
    mtls: String,
}

fn secured() -> Option<Secured> {
    Some(Secured {
        tls: support::external("OPENORDER_TEST_KAFKA_TLS_DIR")?.into(),
        sasl_ssl: support::external("OPENORDER_TEST_KAFKA_SASL_SSL_BOOTSTRAP")?,
        mtls: support::external("OPENORDER_TEST_KAFKA_MTLS_BOOTSTRAP")?,
    })
}

fn scram(tls: &std::path::Path, password: &str, ca: &str) -> KafkaSecurityArgs {
    KafkaSecurityArgs {
        kafka_security_protocol: SecurityProtocol::SaslSsl,
        kafka_sasl_mechanism: Some(SaslMechanism::ScramSha512),
        kafka_sasl_username: Some("openorder".into()),
        kafka_sasl_password: Some(Secret::new(password)),
        kafka_ssl_ca_file: Some(tls.join(ca)),
        ..Default::default()
    }
}

async fn an_order_goes_through(bootstrap: &str, security: KafkaSecurityArgs) {
    let options = StackOptions {
        kafka_security: Some((bootstrap.to_string(), security)),
        ..Default::default()
    };
    let Some(stack) = Stack::spawn(BrokerKind::Kafka, DbKind::Sqlite, options).await else {
        return;
    };
    let id = stack.post_order(42, &[("ABC-001", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(stack.wait_notifications(id).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_over_sasl_ssl_with_scram_sha_512() {
    let Some(kafka) = secured() else { return };
    an_order_goes_through(
        &kafka.sasl_ssl,
        scram(&kafka.tls, "openorder-scram-secret", "ca.pem"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_over_tls_with_a_client_certificate() {
    let Some(kafka) = secured() else { return };
    let security = KafkaSecurityArgs {
        kafka_security_protocol: SecurityProtocol::Ssl,
        kafka_ssl_ca_file: Some(kafka.tls.join("ca.pem")),
        kafka_ssl_certificate_file: Some(kafka.tls.join("client.pem")),
        kafka_ssl_key_file: Some(kafka.tls.join("client.key")),
        ..Default::default()
    };
    an_order_goes_through(&kafka.mtls, security).await;
}

/// order-service started against `bootstrap` with `security`: the error it stops with.
async fn start_up_error(bootstrap: &str, security: KafkaSecurityArgs) -> String {
    support::init_tracing();
    let dir = support::temp_dir("refused");
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut kafka = platform::kafka::KafkaArgs::with_defaults(bootstrap, &prefix);
    kafka.broker.security = security;
    let config = order_service::Config {
        core: platform::service::ServiceArgs {
            kafka,
            database: platform::db::DatabaseArgs {
                retention: Default::default(),
                database_url: format!("sqlite://{}/order.db", dir.display()),
                database_max_connections: 2,
            },
            http: Default::default(),
            stop: Default::default(),
        },
        webhooks: Default::default(),
        orders: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = platform::CancellationToken::new();
    let run = order_service::run(config, listener, shutdown.clone());
    let result = tokio::time::timeout(Duration::from_secs(60), run).await;
    shutdown.cancel();
    let err = result
        .expect("start-up gives up within a minute")
        .expect_err("start-up fails");
    format!("{err:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sasl_password_stops_start_up_with_the_brokers_reason() {
    let Some(kafka) = secured() else { return };
    let err = start_up_error(
        &kafka.sasl_ssl,
        scram(&kafka.tls, "not-the-password", "ca.pem"),
    )
    .await;
    assert!(err.contains("refused this client"), "{err}");
    assert!(
        err.contains("SASL") || err.contains("uthentication"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the password is not shown: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_an_untrusted_ca_stops_start_up_with_the_reason() {
    let Some(kafka) = secured() else { return };
    let err = start_up_error(
        &kafka.sasl_ssl,
        scram(&kafka.tls, "openorder-scram-secret", "other-ca.pem"),
    )
    .await;
    assert!(err.contains("refused this client"), "{err}");
    assert!(
        err.contains("certificate verify failed") || err.contains("SSL"),
        "{err}"
    );
}
