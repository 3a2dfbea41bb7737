//! Who am I and what can I ask about: `GET /api/v1/me`, `GET /api/v1/products`,
//! and the product check every drafting route makes against that listing.

use axum::extract::State as AxState;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::auth::{Auth, ANY};
use super::{json, ApiError, AppState, State};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/products", get(products))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "id, name and role"), (status = 401, body = super::ErrorBody)))]
pub async fn me(auth: Auth) -> Response {
    json(json!({"id": auth.0.id, "name": auth.0.name, "role": auth.0.role.as_str()}))
}

/// The products in the index, with their documents, MLR numbers and expiry dates.
#[utoipa::path(get, path = "/api/v1/products", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "products and their documents"), (status = 401, body = super::ErrorBody)))]
pub async fn products(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(ANY, "listing products")?;
    let listing = st.products.read().map(|p| p.clone()).map_err(|_| ApiError::internal("the products lock is poisoned; restart the server"))?;
    Ok(json(listing))
}

/// The product names in the listing.
/// (Of the index version served now: a published version may add one.)
pub(crate) fn product_names(st: &AppState) -> Vec<String> {
    let Ok(listing) = st.products.read() else { return Vec::new() };
    listing["products"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Refuses a product the index does not hold (an answer would cite nothing).
pub(crate) fn known_product(st: &AppState, product: &str) -> Result<String, ApiError> {
    let p = product.trim().to_lowercase();
    let names = product_names(st);
    if names.contains(&p) {
        return Ok(p);
    }
    Err(ApiError::bad(
        "unknown_product",
        format!("no product {p:?} in the index (it holds: {}); see GET /api/v1/products", names.join(", ")),
    ))
}

