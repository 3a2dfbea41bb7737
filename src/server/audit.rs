//! The audit log for compliance: search it by date range and page through
//! it, open one record in full, export a range as CSV or JSON Lines (a
//! download), and verify its hash chain, a finding told in words with the
//! record to open (`/api/v1/audit…`).

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Auth, COMPLIANCE};
use super::{json, ApiError, Query, State, UrlPath};
use crate::audit::export::Format;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/audit", get(audit_search))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/audit/export", get(audit_export))
        .route("/api/v1/audit/{seq}", get(audit_record))
}

/// Most records one search page returns.
pub const MAX_PAGE: usize = 1000;

/// Most records one export holds; a longer range is refused (413) with a
/// request to export it in parts.
pub const MAX_EXPORT_RECORDS: usize = 100_000;

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
    /// Records to skip (newest first), for paging.
    offset: Option<usize>,
}

/// A time bound: RFC 3339, or a day (`YYYY-MM-DD`, UTC). A day as `to` is
/// the end of that day, so `from=D&to=D` is the whole of day D.
fn parse_time(field: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .ok_or_else(|| ApiError::bad("bad_time", format!("{field} {s:?} is not RFC 3339 or YYYY-MM-DD")))?;
    let day = if field == "to" { day.succ_opt().unwrap_or(day) } else { day };
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(|| ApiError::bad("bad_time", format!("{field} {s:?} is not a day")))
}

/// Searches the audit log (compliance, admin); newest first, a page of
/// `limit` (at most [`MAX_PAGE`]) from `offset`, with the `total` matching.
#[utoipa::path(get, path = "/api/v1/audit", tag = "compliance", security(("bearer" = [])),
    params(("action" = Option<String>, Query), ("actor" = Option<String>, Query), ("route" = Option<String>, Query), ("case_id" = Option<String>, Query),
        ("q" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<usize>, Query), ("offset" = Option<usize>, Query)),
    responses((status = 200, description = "{records, total, offset, limit}"), (status = 403, body = super::ErrorBody)))]
pub async fn audit_search(AxState(st): AxState<State>, auth: Auth, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading the audit log")?;
    let from = q.from.as_deref().map(|s| parse_time("from", s)).transpose()?;
    let to = q.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let offset = q.offset.unwrap_or(0);
    let st2 = st.clone();
    let matching = tokio::task::spawn_blocking(move || -> Result<Vec<crate::audit::Entry>, ApiError> {
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
            .collect())
    })
    .await
    .map_err(ApiError::internal)??;
    let total = matching.len();
    let records: Vec<crate::audit::Entry> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(json(json!({"records": records, "total": total, "offset": offset, "limit": limit})))
}

/// One audit record in full (compliance, admin): every stored field, the
/// JSON columns parsed (passages, flags, timings, detail with its
/// citations), and whether the record still matches its own hash.
#[utoipa::path(get, path = "/api/v1/audit/{seq}", tag = "compliance", security(("bearer" = [])),
    params(("seq" = i64, Path)), responses((status = 200, description = "{record, passages, flags, timings, detail, citations, hash_ok}"), (status = 404, body = super::ErrorBody)))]
pub async fn audit_record(AxState(st): AxState<State>, auth: Auth, UrlPath(seq): UrlPath<i64>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading an audit record")?;
    let st2 = st.clone();
    let e = tokio::task::spawn_blocking(move || st2.audit.get(seq)).await.map_err(ApiError::internal)??;
    let e = e.ok_or_else(|| ApiError::not_found(format!("no audit record {seq}")))?;
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()));
    let detail = parse(&e.detail_json);
    let hash_ok = crate::audit::hash_of(&e) == e.hash;
    Ok(json(json!({
        "passages": parse(&e.passages_json),
        "flags": parse(&e.flags_json),
        "timings": parse(&e.timings_json),
        "citations": detail.get("citations").cloned().unwrap_or(serde_json::Value::Null),
        "detail": detail,
        "hash_ok": hash_ok,
        "record": e,
    })))
}

/// `?format=csv|jsonl&from=&to=` for [`audit_export`].
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Exports the records of a date range (compliance, admin) as CSV or JSON
/// Lines, in chain order, as a file download (`Content-Disposition:
/// attachment`). The export itself is recorded (`audit_exported`).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "compliance", security(("bearer" = [])),
    params(("format" = Option<String>, Query, description = "csv (default) or jsonl"), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, description = "the file"), (status = 400, body = super::ErrorBody), (status = 413, body = super::ErrorBody)))]
pub async fn audit_export(AxState(st): AxState<State>, auth: Auth, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    let user = auth.require(COMPLIANCE, "exporting the audit log")?.clone();
    let (format, ext, mime) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => (Format::Csv, "csv", "text/csv; charset=utf-8"),
        "jsonl" => (Format::Jsonl, "jsonl", "application/x-ndjson"),
        other => return Err(ApiError::bad("bad_query", format!("format {other:?}: use csv or jsonl"))),
    };
    let from = q.from.as_deref().map(|s| parse_time("from", s)).transpose()?;
    let to = q.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    let st2 = st.clone();
    let (body, n) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, usize), ApiError> {
        let entries = st2.audit.range(from, to)?;
        if entries.len() > MAX_EXPORT_RECORDS {
            return Err(ApiError::too_large(format!(
                "{} records in this range, over the export limit of {MAX_EXPORT_RECORDS}: export a shorter date range at a time",
                entries.len()
            )));
        }
        let mut out = Vec::new();
        crate::audit::export::write(&entries, format, &mut out).map_err(ApiError::internal)?;
        let mut rec = crate::audit::Record::new(&user.id, user.role.as_str(), "audit_exported");
        rec.detail = json!({"format": ext, "from": from.map(crate::audit::stamp), "to": to.map(crate::audit::stamp), "records": entries.len()});
        st2.audit.append(&rec)?;
        Ok((out, entries.len()))
    })
    .await
    .map_err(ApiError::internal)??;
    let day = |t: Option<&String>| t.map(|s| s.chars().take(10).filter(|c| c.is_ascii_digit() || *c == '-').collect::<String>());
    let name = match (day(q.from.as_ref()), day(q.to.as_ref())) {
        (Some(f), Some(t)) => format!("onlabel-audit-{f}-to-{t}.{ext}"),
        (Some(f), None) => format!("onlabel-audit-from-{f}.{ext}"),
        (None, Some(t)) => format!("onlabel-audit-to-{t}.{ext}"),
        (None, None) => format!("onlabel-audit-all.{ext}"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::HeaderName::from_static("x-record-count"), n.to_string()),
        ],
        body,
    )
        .into_response())
}

/// `?head_seq=&head_hash=` for [`audit_verify`]: a head noted earlier detects truncation.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    head_seq: Option<i64>,
    head_hash: Option<String>,
}

/// Verifies the hash chain (compliance, admin): the first tampered record,
/// if any, and `finding`: that finding in words and the record to open.
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
    // The finding in words, with the record to open.
    let finding = v.tamper.as_ref().map(|t| json!({"words": t.words(), "record": t.record(), "first_bad": t.first_bad()}));
    let mut out = serde_json::to_value(&v).map_err(ApiError::internal)?;
    out["finding"] = finding.unwrap_or(serde_json::Value::Null);
    Ok(json(out))
}

