//! Health checks for the operator and the load balancer: `GET /healthz`
//! (alive) and `GET /readyz` (ready to answer).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{json, State};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Alive (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "ok")))]
pub async fn healthz() -> Response {
    json(json!({"status": "ok"}))
}

/// Ready: index and (when configured) model loaded, store open, not shutting
/// down; with the index version served (`index_version`, null for a flat index).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready (starting or shutting down)")))]
pub async fn readyz(AxState(st): AxState<State>) -> Response {
    let (model, passages, index_version) = match st.copilot.read() {
        Ok(c) => (c.grounded().map(|g| g.model.id().to_string()), c.index().len(), c.index().version().map(str::to_string)),
        Err(_) => (None, 0, None),
    };
    let store = st.store.read(|c| c.query("SELECT 1", &[])).is_ok();
    let ready = st.ready.load(Ordering::SeqCst) && store && passages > 0;
    let body = json!({"ready": ready, "model": model, "passages": passages, "index": st.index, "index_version": index_version, "store": store,
        "queue": {"working": st.gate.working(), "waiting": st.gate.waiting()}});
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

