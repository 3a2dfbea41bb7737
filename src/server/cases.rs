//! The Medical / Pharmacovigilance case queue: list, read and work cases
//! (`/api/v1/cases…`).

use axum::extract::State as AxState;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Auth, MEDICAL};
use super::{json, ApiError, Query, RawBody, State, UrlPath};
use crate::cases::{CaseFilter, CaseState};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/cases", get(list_cases))
        .route("/api/v1/cases/{id}", get(show_case))
        .route("/api/v1/cases/{id}/{action}", post(case_action))
}

/// Filters of [`list_cases`].
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    state: Option<String>,
    kind: Option<String>,
    owner: Option<String>,
    open: Option<bool>,
    limit: Option<usize>,
}

/// The case queue (medical, admin).
#[utoipa::path(get, path = "/api/v1/cases", tag = "medical", security(("bearer" = [])),
    params(("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("owner" = Option<String>, Query), ("open" = Option<bool>, Query)),
    responses((status = 200, description = "{cases}"), (status = 403, body = super::ErrorBody)))]
pub async fn list_cases(AxState(st): AxState<State>, auth: Auth, Query(q): Query<CaseQuery>) -> Result<Response, ApiError> {
    auth.require(MEDICAL, "the case queue")?;
    let filter = CaseFilter {
        state: q.state.as_deref().map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_state", e))).transpose()?,
        kind: q.kind.as_deref().map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_kind", e))).transpose()?,
        owner: q.owner,
        open_only: q.open.unwrap_or(false),
        overdue_at: None,
        limit: Some(q.limit.unwrap_or(200).min(1000)),
    };
    let now = chrono::Utc::now();
    let cases: Vec<Value> = st
        .cases
        .list(&filter)?
        .into_iter()
        .map(|c| {
            let overdue = c.is_overdue(now);
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            v["overdue"] = overdue.into();
            v
        })
        .collect();
    Ok(json(json!({"cases": cases})))
}

/// One case with its history.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "medical", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "{case, history}"), (status = 404, body = super::ErrorBody)))]
pub async fn show_case(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(MEDICAL, "reading a case")?;
    let c = st.cases.get(&id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    Ok(json(json!({"case": c, "history": st.cases.history(&id)?})))
}

/// The body of a case action.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseActionRequest {
    /// assign: the new owner's user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// triage / start: a note.
    #[serde(default)]
    pub note: Option<String>,
    /// resolve: the resolution.
    #[serde(default)]
    pub resolution: Option<String>,
}

/// assign, triage, start or resolve a case (medical, admin).
#[utoipa::path(post, path = "/api/v1/cases/{id}/{action}", tag = "medical", security(("bearer" = [])), request_body = CaseActionRequest,
    params(("id" = String, Path), ("action" = String, Path, description = "assign | triage | start | resolve")),
    responses((status = 200, description = "the case"), (status = 403, body = super::ErrorBody), (status = 409, description = "not allowed in its state", body = super::ErrorBody)))]
pub async fn case_action(
    AxState(st): AxState<State>,
    auth: Auth,
    UrlPath((id, action)): UrlPath<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let user = auth.require(MEDICAL, "working a case")?;
    let r: CaseActionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CaseActionRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad("bad_json", format!("the body is not the JSON this route takes: {e}")))?
    };
    let c = match action.as_str() {
        "assign" => {
            let owner = r.owner.filter(|o| !o.trim().is_empty()).ok_or_else(|| ApiError::bad("empty", "owner is missing: the user id to assign the case to"))?;
            st.cases.assign(&id, owner.trim(), &user.id)?
        }
        "triage" => st.cases.transition(&id, CaseState::Triaged, &user.id, r.note.as_deref())?,
        "start" => st.cases.transition(&id, CaseState::InProgress, &user.id, r.note.as_deref())?,
        "resolve" => {
            let res = r.resolution.filter(|o| !o.trim().is_empty()).ok_or_else(|| ApiError::bad("empty", "resolution is missing: say how the case was closed"))?;
            st.cases.resolve(&id, &user.id, &res)?
        }
        other => return Err(ApiError::not_found(format!("no case action {other:?}: use assign, triage, start or resolve"))),
    };
    Ok(json(c))
}

