//! Requests the orders API refuses, each with an RFC 9457 problem, and writing nothing:
//! malformed or oversized bodies, wrong types, invalid fields, wrong methods and heads.

use super::*;

#[tokio::test]
async fn malformed_json_is_a_400_problem_and_writes_nothing() {
    let app = spawn_app().await;
    let (status, headers, body) = app.post_json(r#"{"userId":42,"items":["#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(&headers, &body, 400);
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_problem() {
    let app = spawn_app().await;
    let (status, headers, body) = app.post("text/plain", r#"{"userId":42,"items":[]}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_problem(&headers, &body, 415);
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"userId":42,"items":[],"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, headers, body) = app.post_json(big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(&headers, &body, 413);
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn invalid_fields_are_a_422_problem_naming_each_field() {
    let app = spawn_app().await;
    let (status, headers, body) = app
        .post_json(r#"{"userId":-1,"items":[{"sku":"ABC-001","qty":10001}]}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&headers, &body, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["/userId", "/items/0/qty"]);

    let (status, _, body) = app.post_json(r#"{"userId":"42","items":[]}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "/userId");

    let (status, _, body) = app.post_json(r#"{"userId":1,"items":[],"extra":1}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn two_objects_or_trailing_data_in_one_body_are_a_400_problem_and_write_nothing() {
    let app = spawn_app().await;
    let one = r#"{"userId":42,"items":[{"sku":"ABC-001","qty":1}]}"#;
    for body in [
        format!("{one}{one}"),
        format!("{one} trailing"),
        format!("{one}]"),
    ] {
        let (status, headers, problem) = app.post_json(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_problem(&headers, &problem, 400);
        assert_eq!(problem["type"], "/problems/malformed-json", "{body}");
    }
    // White space after the object is fine.
    let (status, _, _) = app.post_json(format!("{one} \n")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.count("orders").await, 1, "only the well-formed one");
}

#[tokio::test]
async fn arrays_in_place_of_objects_are_a_422_problem_naming_where() {
    let app = spawn_app().await;
    for (body, pointer) in [
        (r#"[42,[["ABC-001",1]],null]"#, "/"),
        (r#"{"userId":42,"items":[["ABC-001",1]]}"#, "/items/0"),
        (
            r#"{"userId":42,"items":[{"sku":"ABC-001","qty":1}],"contact":["a@example.com",null]}"#,
            "/contact",
        ),
    ] {
        let (status, headers, problem) = app.post_json(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_problem(&headers, &problem, 422);
        assert_eq!(problem["errors"][0]["field"], pointer, "{problem}");
    }
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn a_wrong_method_a_bad_path_segment_and_oversized_heads_are_problems() {
    let app = spawn_app().await;
    // Wrong method: 405 with Allow, as a problem.
    let (status, headers, problem) = app
        .send(Request::delete("/api/orders").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_problem(&headers, &problem, 405);
    assert!(headers[header::ALLOW].to_str().unwrap().contains("POST"));
    // A path segment that is not UTF-8 once decoded.
    let (status, headers, problem) = app
        .send(
            Request::get("/api/orders/1%FF")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(&headers, &problem, 400);
    // A 20 KB request target (past 64 KiB the `http` crate itself refuses to build one;
    // served over a socket, `serve` answers those too, see platform's http tests).
    let long = format!("/api/orders?userId=1&x={}", "a".repeat(20_000));
    let (status, headers, problem) = app
        .send(Request::get(long.as_str()).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert_problem(&headers, &problem, 414);
    // 1,000 headers.
    let mut many = Request::get("/api/orders?userId=1");
    for i in 0..1_000 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let (status, headers, problem) = app.send(many.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_problem(&headers, &problem, 431);
}
