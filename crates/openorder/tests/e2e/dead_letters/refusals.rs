//! Requests the dead-letter API refuses: a replay that does not say which dead letters, or
//! names a topic that is no dead-letter topic of this deployment; and a list bounded by its
//! limit, one dead letter shown by its position.

use super::{admin, dead_letters_of};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_request_must_say_which_dead_letters() {
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let topic = stack.topics().order_created_dlt();
    let (status, problem) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topic})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": "order.created", "all": true})),
    )
    .await;
    assert_eq!(status, 422, "only DLT topics replay");
    let (status, _) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topic, "partition": 0, "offset": 99})),
    )
    .await;
    assert_eq!(status, 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_api_reads_only_this_deployments_dead_letter_topics_and_bounds_a_list() {
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let topics = stack.topics();
    let id = stack.post_order(42, &[("FAIL", 1)]).await;
    dead_letters_of(&stack, id, 1).await;
    let get = |path: String| {
        let stack = &stack;
        async move { admin(stack, reqwest::Method::GET, &path, None).await }
    };
    // Not a dead-letter topic, or another deployment's: refused, nothing read.
    for topic in [
        topics.order_created(),
        "order.created.DLT".to_string(),
        format!("{}.DLT", topics.prefix()),
    ] {
        let (status, problem) = get(format!("/admin/dlt?topic={topic}")).await;
        assert_eq!(status, 422, "{topic}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "topic", "{problem}");
        let (status, _) = get(format!("/admin/dlt/{topic}/0/0")).await;
        assert_eq!(status, 404, "{topic}");
    }
    let (status, problem) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topics.order_created(), "all": true})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    // A list is bounded: limit 1 answers one; 0 and past the cap are refused.
    let dlt = topics.order_created_dlt();
    let (status, one) = get(format!("/admin/dlt?topic={dlt}&limit=1")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one.as_array().unwrap().len(), 1);
    for limit in ["0", "1001", "x"] {
        let (status, problem) = get(format!("/admin/dlt?topic={dlt}&limit={limit}")).await;
        assert_eq!(status, 400, "{limit}: {problem}");
    }
    // One dead letter shown by its position; a position past the end is 404.
    let (status, shown) = get(format!(
        "/admin/dlt/{dlt}/{}/{}",
        one[0]["partition"], one[0]["offset"]
    ))
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["summary"]["orderId"], id);
    let (status, _) = get(format!("/admin/dlt/{dlt}/0/999999")).await;
    assert_eq!(status, 404);
    stack.stop().await;
}
