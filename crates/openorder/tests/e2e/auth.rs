//! Authentication and who may see what, end to end on real brokers and databases: operator
//! tokens (two at once, as during a rotation) and customers' JWTs from a fake OpenID Connect
//! issuer on loopback that signs them with its own keys (ES256, RS256) and serves its JWKS.
//!
//! A module per part, run in turn on one locked stack per backend ([`all`]): [`doors`]
//! (every private endpoint locked, operators' rotated tokens), [`customers`] (each sees only
//! theirs) and [`tokens`] (tokens that do not fit).

mod customers;
mod doors;
mod tokens;

use crate::support;
use crate::support::issuer::{Issuer, AUDIENCE};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use platform::auth::operators::{new_token, Entry};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The customers: Alice and Bob (their user ids).
const ALICE: i64 = 7;
const BOB: i64 = 8;

struct Locked {
    stack: Stack,
    issuer: Issuer,
    /// Two operator tokens, both valid (a rotation in progress).
    ops: [String; 2],
}

async fn locked(broker: BrokerKind, db: DbKind) -> Option<Locked> {
    let issuer = Issuer::start().await;
    let ops = [new_token(), new_token()];
    let file = support::temp_dir("operators").join("operators");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let lines = format!(
        "# old and new, while callers move\n{}\n{}\n",
        Entry::for_token("ops-old", &ops[0]).line(),
        Entry::for_token("ops-new", &ops[1]).line()
    );
    std::fs::write(&file, lines).unwrap();
    let options = StackOptions {
        auth: platform::auth::AuthArgs {
            operator_tokens_file: Some(file),
            oidc_issuer: Some(issuer.url.clone()),
            oidc_audience: Some(AUDIENCE.into()),
            oidc_user_claim: "sub".into(),
            protect_metrics: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let stack = Stack::spawn(broker, db, options).await?;
    Some(Locked { stack, issuer, ops })
}

impl Locked {
    async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.stack.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, url: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, url, Some(token), None).await
    }

    fn orders(&self) -> String {
        format!("{}/api/orders", self.stack.order_url)
    }
}

async fn all(broker: BrokerKind, db: DbKind) {
    let Some(l) = locked(broker, db).await else {
        return;
    };
    doors::every_private_endpoint_refuses_a_caller_without_a_credential_and_writes_nothing(&l)
        .await;
    doors::operators_use_either_rotated_token_and_customers_and_strangers_are_refused(&l).await;
    customers::a_customer_sees_and_changes_only_their_own_orders_notifications_and_contact(&l)
        .await;
    tokens::tokens_the_issuer_did_not_make_or_that_do_not_fit_are_refused(&l).await;
    l.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_is_locked_and_each_caller_sees_only_theirs_on_tansu_with_sqlite() {
    all(BrokerKind::Tansu, DbKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_is_locked_and_each_caller_sees_only_theirs_on_kafka_with_postgres() {
    all(BrokerKind::Kafka, DbKind::Postgres).await;
}
