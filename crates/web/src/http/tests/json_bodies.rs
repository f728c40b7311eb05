//! The JSON body extractor: a field named by its JSON pointer, broken JSON, a body that
//! never arrives.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::Router;

use super::*;

#[test]
fn a_wrong_type_names_the_field_by_json_pointer() {
    let problem = decode_json::<Body>(br#"{"items":[{"qty":1},{"qty":"x"}]}"#).unwrap_err();
    assert_eq!(problem.status, 422);
    assert_eq!(problem.errors[0].field, "/items/1/qty");
}

#[test]
fn broken_json_is_a_bad_request() {
    let problem = decode_json::<Body>(br#"{"items":["#).unwrap_err();
    assert_eq!(problem.status, 400);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_request_timeout() {
    use tower::ServiceExt;
    let router = Router::new().route(
        "/orders",
        axum::routing::post(|ApiJson(_body): ApiJson<Body>| async { StatusCode::ACCEPTED }),
    );
    // Headers sent, body never: a stream that stays pending.
    let trickle = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(trickle))
        .unwrap();

    let answer = tokio::time::timeout(BODY_READ_TIMEOUT * 2, app(router).oneshot(request))
        .await
        .expect("the request waited for its body beyond the timeout")
        .unwrap();

    assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    let body = axum::body::to_bytes(answer.into_body(), 4096)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "/problems/request-timeout");
}
