//! The published API contracts: each service's OpenAPI document is generated from its
//! routes and types, committed under `docs/api/` (so API changes show up in review), and
//! served at `/openapi.json` with a page at `/docs` that needs nothing from the network.

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::Value;

fn documents() -> [(&'static str, utoipa::openapi::OpenApi); 3] {
    [
        ("order-service", order_service::routes::openapi()),
        ("inventory-service", inventory_service::routes::openapi()),
        (
            "notification-service",
            notification_service::routes::openapi(),
        ),
    ]
}

fn committed_path(service: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/api")
        .join(format!("{service}.openapi.json"))
}

#[test]
fn the_committed_openapi_documents_are_the_generated_ones() {
    for (service, document) in documents() {
        let generated = platform::http::openapi::to_json(&document);
        let path = committed_path(service);
        if std::env::var("OPENORDER_TEST_WRITE_API_DOCS").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/api/{service}.openapi.json differs from the generated document: review the \
             change and run `OPENORDER_TEST_WRITE_API_DOCS=1 cargo test -p openorder --test e2e api_docs::` to write it"
        );
    }
}

#[test]
fn every_operation_documents_its_problems_and_its_credentials() {
    for (service, document) in documents() {
        let doc: Value =
            serde_json::from_str(&platform::http::openapi::to_json(&document)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["operatorToken"]["scheme"], "bearer", "{service}");
        assert_eq!(schemes["customerJwt"]["bearerFormat"], "JWT", "{service}");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let content = &response["content"];
                        if path != "/health/ready" {
                            assert!(
                                content["application/problem+json"]["schema"]["$ref"]
                                    == "#/components/schemas/Problem",
                                "{service} {method} {path} {status} is not a problem: {response}"
                            );
                        }
                    }
                }
                let open = path.starts_with("/health") || path == "/asyncapi.json";
                assert!(
                    open || op["security"].is_array(),
                    "{service} {method} {path} names its credentials"
                );
                if path.starts_with("/admin") {
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403"),
                        "{service} {method} {path}"
                    );
                    assert_eq!(
                        op["security"],
                        serde_json::json!([{"operatorToken": []}]),
                        "{service} {method} {path}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_serves_its_document_and_a_page_to_read_it() {
    let Some(stack) =
        Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default()).await
    else {
        return;
    };
    for (base, (service, document)) in [
        &stack.order_url,
        &stack.inventory_url,
        &stack.notification_url,
    ]
    .into_iter()
    .zip(documents())
    {
        let served: Value = stack.get_json(format!("{base}/openapi.json")).await;
        let expected: Value =
            serde_json::from_str(&platform::http::openapi::to_json(&document)).unwrap();
        assert_eq!(served, expected, "{service}");
        let page = stack.http.get(format!("{base}/docs")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("openapi.json") && !html.contains("https://"),
            "{service}: the page loads nothing from elsewhere"
        );
    }
    stack.stop().await;
}

/// Chromium (headless) with nothing of its own going out: no background networking,
/// component updates, sync or first-run work; the page it loads is on loopback.
fn dump_dom(browser: &str, url: &str) -> String {
    let profile = support::temp_dir("chromium");
    let output = std::process::Command::new("timeout")
        .arg("60")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_shows_every_operation_in_a_real_browser() {
    let Some(browser) = support::external("OPENORDER_TEST_CHROMIUM") else {
        return;
    };
    let Some(stack) =
        Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default()).await
    else {
        return;
    };
    let doc: Value = stack
        .get_json(format!("{}/openapi.json", stack.order_url))
        .await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let url = format!("{}/docs", stack.order_url);
    let dom = tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
        .await
        .unwrap();
    assert_eq!(
        dom.matches("<details class=\"op\"").count(),
        operations,
        "{dom}"
    );
    for shown in [
        "OpenOrder order-service",
        "/api/orders/{id}/cancel",
        "Cancel an order.",
        "customerJwt",
        "application/problem+json",
    ] {
        assert!(dom.contains(shown), "the page shows {shown}: {dom}");
    }
    assert!(
        dom.contains("<p id=\"error\"></p>"),
        "no error shown: {dom}"
    );
    stack.stop().await;
}
