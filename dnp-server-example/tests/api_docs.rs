//! docs/api.md against the OpenAPI document the server generates: every operation of the
//! document is listed on the page. (Regression: `POST /auth/oauth/mfa/verify` and the
//! identity-provider sign-in routes were served and described in OpenAPI but missing
//! from the page.)

mod common;

use axum::http::StatusCode;
use common::TestApp;

/// Whether `doc` names the operation as `` `METHOD /path` ``, or with a query string
/// (`` `GET /dnp/export?format=…` ``).
fn documents(doc: &str, method: &str, path: &str) -> bool {
    let needle = format!("`{method} {path}");
    doc.match_indices(&needle).any(|(at, _)| matches!(doc[at + needle.len()..].chars().next(), Some('`' | '?')))
}

#[test]
fn documents_matches_whole_routes_only() {
    let doc = "`GET /jobs`, `GET /jobs/{id}`, `GET /dnp/export?format=json`";
    assert!(documents(doc, "GET", "/jobs"));
    assert!(documents(doc, "GET", "/jobs/{id}"));
    assert!(documents(doc, "GET", "/dnp/export"));
    assert!(!documents(doc, "POST", "/jobs"), "another method");
    assert!(!documents(doc, "GET", "/dnp"), "a prefix of a listed route");
    assert!(!documents(doc, "GET", "/jobs/{id}/cancel"));
}

#[tokio::test]
async fn every_openapi_operation_is_listed_in_docs_api_md() {
    let app = TestApp::new().await;
    let r = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let paths = r.body["paths"].as_object().expect("paths in the OpenAPI document");
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/api.md");

    let mut operations = 0;
    let mut missing = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let method = method.to_uppercase();
            operations += 1;
            if !documents(&doc, &method, path) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(operations >= 30, "{operations} operations in the OpenAPI document");
    assert!(missing.is_empty(), "docs/api.md does not list these routes of /api/v1/openapi.json: {missing:#?}");
    app.cleanup().await;
}
