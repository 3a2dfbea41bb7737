//! The Medical / Pharmacovigilance case queue: list, search, read and work
//! cases (`/api/v1/cases…`); a rep's "My reports" (the list, narrowed to the
//! cases they reported); the AE intake of a PV case (`…/intake`); the users a
//! case may be assigned to (`/api/v1/case-owners`).
//!
//! Who may do what (issue 21.4, "each person sees their own": enforced here,
//! not only by the UI):
//!
//! | route | medical, admin | anyone else signed in (rep, mlr_reviewer, compliance) |
//! | --- | --- | --- |
//! | `GET /api/v1/cases` | every case (`mine=true`: the ones they reported) | only the cases they reported |
//! | `GET /api/v1/cases/{id}` | yes | the case's reporter only, without its audit references; 404 `not_found` otherwise |
//! | `POST /api/v1/cases/{id}/{action}` | yes | 403 (by role, before the id is looked at) |
//! | `GET`/`PUT /api/v1/cases/{id}/intake` | yes | the case's reporter only; 404 `not_found` otherwise |
//! | `GET /api/v1/case-owners` | yes | 403 |
//!
//! Another person's case answers exactly as a case that does not exist
//! (404, code `not_found`, the same message), never 403: a rep cannot learn
//! which case ids exist by probing them. Compliance reads what happened to
//! every case in the audit log (`/api/v1/audit…`, compliance and admin), not
//! here. A rep's visits and Medical requests follow the same rule
//! ([`super::conversations`]: their owner only, 404 for anyone else).

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Auth, MEDICAL};
use super::{json, ApiError, Query, RawBody, State, UrlPath};
use crate::cases::intake::{self, Intake};
use crate::cases::{Case, CaseFilter, CaseKind, CaseSort, CaseState, StoredIntake};

/// Most cases one list answer holds.
pub const MAX_LIST: usize = 1000;

/// Most characters of a case id echoed back in a not-found message.
pub const MAX_ID_ECHO: usize = 64;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/cases", get(list_cases))
        .route("/api/v1/cases/{id}", get(show_case))
        .route("/api/v1/cases/{id}/intake", get(show_intake).put(put_intake))
        .route("/api/v1/cases/{id}/{action}", post(case_action))
        .route("/api/v1/case-owners", get(case_owners))
}

/// Filters of [`list_cases`].
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    state: Option<String>,
    kind: Option<String>,
    owner: Option<String>,
    open: Option<bool>,
    limit: Option<usize>,
    /// Text in the id, question, product or HCP.
    q: Option<String>,
    /// `created` (default), `due` or `updated`; `-` before it reverses.
    sort: Option<String>,
    /// Only the cases the caller reported.
    mine: Option<bool>,
}

/// The case queue, searched and sorted, with counts by state. Medical and
/// admin see every case; anyone else only the cases they reported (a rep's
/// "My reports").
#[utoipa::path(get, path = "/api/v1/cases", tag = "medical", security(("bearer" = [])),
    params(("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("owner" = Option<String>, Query), ("open" = Option<bool>, Query),
        ("q" = Option<String>, Query, description = "text in the id, question, product or HCP"),
        ("sort" = Option<String>, Query, description = "created | due | updated; prefix - to reverse"),
        ("mine" = Option<bool>, Query, description = "only the cases the caller reported (always so for roles other than medical and admin)"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "{cases, counts, mine}"), (status = 400, body = super::ErrorBody)))]
pub async fn list_cases(AxState(st): AxState<State>, auth: Auth, Query(q): Query<CaseQuery>) -> Result<Response, ApiError> {
    let user = &auth.0;
    let worker = MEDICAL.contains(&user.role);
    let mine = !worker || q.mine.unwrap_or(false);
    let (sort, descending) = match q.sort.as_deref().map(str::trim) {
        None | Some("") => (CaseSort::Created, false),
        Some(s) => {
            let (desc, key) = s.strip_prefix('-').map_or((false, s), |k| (true, k));
            (key.parse::<CaseSort>().map_err(|e| ApiError::bad("bad_input", format!("sort: {e}")))?, desc)
        }
    };
    let filter = CaseFilter {
        state: q.state.as_deref().filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_state", e))).transpose()?,
        kind: q.kind.as_deref().filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_kind", e))).transpose()?,
        owner: q.owner.filter(|o| !o.trim().is_empty()),
        open_only: q.open.unwrap_or(false),
        overdue_at: None,
        reporter: mine.then(|| user.id.clone()),
        q: q.q,
        sort,
        descending,
        limit: Some(q.limit.unwrap_or(200).min(MAX_LIST)),
    };
    let now = Utc::now();
    let counts = st.cases.counts(&filter, now)?;
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
    Ok(json(json!({"cases": cases, "counts": counts, "mine": mine})))
}

/// The PV facts of a case: its current intake (saved, or pre-filled from
/// the rep's words), the minimum-criteria check and the day-0 clock; all
/// `null` for a Medical Information case.
fn pv_facts(case: &Case, saved: Option<&StoredIntake>) -> Value {
    if case.kind != CaseKind::Pharmacovigilance {
        return json!({"intake": null, "intake_version": null, "intake_prefilled": false, "valid_case": null, "day0": null});
    }
    let current = saved.map_or_else(|| intake::prefill(case), |s| s.intake.clone());
    json!({
        "intake": current,
        "intake_version": saved.map(|s| s.version),
        "intake_prefilled": saved.is_none(),
        "valid_case": intake::valid_case(&current),
        "day0": intake::day0(case.created_at, current.seriousness.serious, Utc::now()),
    })
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// One case with its history, its PV facts (intake, minimum criteria,
/// day 0), every intake version and (Medical, admin) the audit records that
/// carry its id. Medical and admin read any case; anyone else only a case
/// they reported (404 `not_found` for another's, as for a missing one).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "medical", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "{case, history, intake, intake_version, intake_prefilled, valid_case, day0, intake_versions, audit} (audit: null for the reporter)"),
        (status = 404, description = "no such case, or not one the caller may see", body = super::ErrorBody)))]
pub async fn show_case(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let worker = MEDICAL.contains(&auth.0.role);
    let c = visible_case(&st, &auth, &id)?;
    let versions = st.cases.intake_versions(&c.id)?;
    // The audit references are Medical's and compliance's reading, not the reporter's.
    let audit = if worker { serde_json::to_value(st.cases.audit_refs(&c.id)?).unwrap_or(Value::Null) } else { Value::Null };
    let mut out = json!({"history": st.cases.history(&c.id)?, "audit": audit});
    merge(&mut out, pv_facts(&c, versions.last()));
    out["intake_versions"] = serde_json::to_value(&versions).unwrap_or(Value::Null);
    out["case"] = serde_json::to_value(&c).unwrap_or(Value::Null);
    Ok(json(out))
}

/// The case `id`, if the caller may see it: Medical and admin any case
/// (a missing one is `case_not_found`, as for a case action); anyone else
/// only a case they reported — another's case, or one that does not exist,
/// is the same 404 `not_found` with the same message, so ids cannot be
/// probed.
fn visible_case(st: &State, auth: &Auth, id: &str) -> Result<Case, ApiError> {
    let user = &auth.0;
    let case = st.cases.get(id)?;
    if MEDICAL.contains(&user.role) {
        return case.ok_or_else(|| crate::cases::Error::NotFound { id: id.to_string() }.into());
    }
    match case {
        Some(c) if c.reporter.trim() == user.id => Ok(c),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no case {:?} among the cases you reported (My reports lists them)", id.trim().chars().take(MAX_ID_ECHO).collect::<String>()),
        )),
    }
}

/// A PV case's AE intake: the saved one, or one pre-filled from the rep's
/// words; with the minimum-criteria check and the day-0 clock (the case's
/// reporter, medical, admin).
#[utoipa::path(get, path = "/api/v1/cases/{id}/intake", tag = "medical", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "{case, intake, intake_version, intake_prefilled, valid_case, day0}"),
        (status = 404, description = "no such case, or not one the caller reported (Medical and admin see every case)", body = super::ErrorBody),
        (status = 409, description = "not a PV case", body = super::ErrorBody)))]
pub async fn show_intake(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let c = visible_case(&st, &auth, &id)?;
    if c.kind != CaseKind::Pharmacovigilance {
        return Err(crate::cases::Error::NotPharmacovigilance { id: c.id }.into());
    }
    let versions = st.cases.intake_versions(&c.id)?;
    let mut out = pv_facts(&c, versions.last());
    out["case"] = summary(&c);
    Ok(json(out))
}

/// What the intake page shows of the case itself.
fn summary(c: &Case) -> Value {
    json!({"id": c.id, "kind": c.kind, "state": c.state, "product": c.product, "question": c.question, "reporter": c.reporter,
        "hcp": c.hcp, "patient": c.patient, "event": c.event, "suspect_product": c.suspect_product,
        "created_at": c.created_at, "due_at": c.due_at})
}

/// Saves a new version of a PV case's AE intake (the case's reporter,
/// medical, admin). The body is the whole intake (strict: unknown fields
/// are refused); each bad field is a 400 that names it.
#[utoipa::path(put, path = "/api/v1/cases/{id}/intake", tag = "medical", security(("bearer" = [])), request_body = Intake,
    params(("id" = String, Path)),
    responses((status = 200, description = "{case, intake, intake_version, valid_case, day0}"), (status = 400, body = super::ErrorBody),
        (status = 404, description = "no such case, or not one the caller reported", body = super::ErrorBody), (status = 409, description = "not a PV case, or closed", body = super::ErrorBody)))]
pub async fn put_intake(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>, RawBody(body): RawBody) -> Result<Response, ApiError> {
    let c = visible_case(&st, &auth, &id)?;
    if c.kind != CaseKind::Pharmacovigilance {
        return Err(crate::cases::Error::NotPharmacovigilance { id: c.id }.into());
    }
    let today = Utc::now().date_naive();
    let new = Intake::parse(&body, today).map_err(|invalid| crate::cases::Error::BadIntake { id: c.id.clone(), invalid })?;
    let saved = st.cases.save_intake(&c.id, &auth.0.id, &new)?;
    let c = st.cases.get(&c.id)?.unwrap_or(c);
    let mut out = pv_facts(&c, Some(&saved));
    out["case"] = summary(&c);
    Ok(json(out))
}

/// The users a case may be assigned to: enabled medical users (medical, admin).
#[utoipa::path(get, path = "/api/v1/case-owners", tag = "medical", security(("bearer" = [])),
    responses((status = 200, description = "{owners: [{id, name}]}"), (status = 403, body = super::ErrorBody)))]
pub async fn case_owners(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(MEDICAL, "the list of case owners")?;
    Ok(json(json!({"owners": st.cases.owners()?})))
}

/// The body of a case action.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseActionRequest {
    /// assign: the new owner's user id (an enabled medical user: `GET /api/v1/case-owners`).
    #[serde(default)]
    pub owner: Option<String>,
    /// triage / start: a note.
    #[serde(default)]
    pub note: Option<String>,
    /// resolve: the resolution.
    #[serde(default)]
    pub resolution: Option<String>,
    /// reopen: why the closed case is worked again.
    #[serde(default)]
    pub reason: Option<String>,
}

/// assign, triage, start, resolve or reopen a case (medical, admin).
#[utoipa::path(post, path = "/api/v1/cases/{id}/{action}", tag = "medical", security(("bearer" = [])), request_body = CaseActionRequest,
    params(("id" = String, Path), ("action" = String, Path, description = "assign | triage | start | resolve | reopen")),
    responses((status = 200, description = "the case"), (status = 400, description = "a missing field, or an owner who is not an enabled medical user", body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 409, description = "not allowed in its state", body = super::ErrorBody)))]
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
        "reopen" => {
            let why = r.reason.filter(|o| !o.trim().is_empty()).ok_or_else(|| ApiError::bad("empty", "reason is missing: say why the closed case is worked again"))?;
            st.cases.reopen(&id, &user.id, &why)?
        }
        other => return Err(ApiError::not_found(format!("no case action {other:?}: use assign, triage, start, resolve or reopen"))),
    };
    Ok(json(c))
}
