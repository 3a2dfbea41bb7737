//! The audit log for compliance: search it and verify its hash chain
//! (`/api/v1/audit…`).

use axum::extract::State as AxState;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Auth, COMPLIANCE};
use super::{json, ApiError, Query, State};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/audit", get(audit_search))
        .route("/api/v1/audit/verify", get(audit_verify))
}

/// Filters of [`audit_search`].
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    route: Option<String>,
    case_id: Option<String>,
    /// Text anywhere in the input or output.
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn parse_time(field: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::bad("bad_time", format!("{field} {s:?} is not RFC 3339 or YYYY-MM-DD")))
}

/// Searches the audit log (compliance, admin); newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "compliance", security(("bearer" = [])),
    params(("action" = Option<String>, Query), ("actor" = Option<String>, Query), ("route" = Option<String>, Query), ("case_id" = Option<String>, Query),
        ("q" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "{records}"), (status = 403, body = super::ErrorBody)))]
pub async fn audit_search(AxState(st): AxState<State>, auth: Auth, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading the audit log")?;
    let from = q.from.as_deref().map(|s| parse_time("from", s)).transpose()?;
    let to = q.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let limit = q.limit.unwrap_or(100).min(1000);
    let st2 = st.clone();
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<crate::audit::Entry>, ApiError> {
        let all = st2.audit.range(from, to)?;
        Ok(all
            .into_iter()
            .rev()
            .filter(|e| q.action.as_ref().is_none_or(|a| &e.action == a))
            .filter(|e| q.actor.as_ref().is_none_or(|a| &e.actor == a))
            .filter(|e| q.route.as_ref().is_none_or(|r| e.route.as_ref() == Some(r)))
            .filter(|e| q.case_id.as_ref().is_none_or(|c| e.case_id.as_ref() == Some(c)))
            .filter(|e| {
                needle.as_ref().is_none_or(|n| {
                    e.input.as_deref().is_some_and(|s| s.to_lowercase().contains(n)) || e.output.as_deref().is_some_and(|s| s.to_lowercase().contains(n))
                })
            })
            .take(limit)
            .collect())
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json(json!({"records": records})))
}

/// `?head_seq=&head_hash=` for [`audit_verify`]: a head noted earlier detects truncation.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    head_seq: Option<i64>,
    head_hash: Option<String>,
}

/// Verifies the hash chain (compliance, admin): the first tampered record, if any.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "compliance", security(("bearer" = [])),
    params(("head_seq" = Option<i64>, Query), ("head_hash" = Option<String>, Query)),
    responses((status = 200, description = "the verification; `ok` false names the first finding")))]
pub async fn audit_verify(AxState(st): AxState<State>, auth: Auth, Query(q): Query<VerifyQuery>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "verifying the audit log")?;
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || {
        let head = match (q.head_seq, q.head_hash.as_deref()) {
            (Some(s), Some(h)) => Some((s, h)),
            _ => None,
        };
        st2.audit.verify(head)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json(v))
}

