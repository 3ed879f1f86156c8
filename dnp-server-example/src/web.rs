//! What the server answers outside the JSON API: the index at `/`, which tells a person or
//! a client where everything is. The web UI's pages will live in this module.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(index))
}

async fn index(State(state): State<AppState>) -> Json<Value> {
    let base = &state.config().public_base_url;
    let providers: Vec<Value> =
        state.providers().iter().map(|(id, e)| json!({"id": id, "display_name": e.display_name})).collect();
    Json(json!({
        "name": "dnp",
        "description": "One Do-Not-Play list, enforced on your music libraries with a preview before and an undo after.",
        "version": env!("CARGO_PKG_VERSION"),
        "api": format!("{base}/api/v1"),
        "openapi": format!("{base}/api/v1/openapi.json"),
        "health": format!("{base}/health"),
        "providers": providers,
    }))
}
