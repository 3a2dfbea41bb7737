//! A rep's visits (`GET /api/v1/conversations`) and the Medical requests
//! their asks left (`/api/v1/medical-requests…`): the store behind
//! `POST /api/v1/ask`'s `conversation_id` ([`super::ask`]).
//!
//! A conversation is one HCP visit, owned by the rep who started it: only
//! they continue or read it (anyone else gets the 404 of a conversation
//! that does not exist). Each turn keeps the question as typed and as
//! resolved against the turn before ([`crate::copilot::followup`]).
//!
//! An ask routed to Medical Information opens no case by itself: it leaves a
//! *pending* request, listed for the rep until they confirm it — the
//! request in the HCP's words, the HCP's consent to be contacted and the
//! channel; the MIR case is opened then, with the consent and channel on its
//! `opened` history entry — or dismiss it with a reason. Both decisions are
//! audited (`medical_request_confirmed`, `medical_request_dismissed`).

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Auth, ANY};
use super::{json, ApiError, Body, State, UrlPath};
use crate::copilot::followup::Previous;
use crate::store::{Row, Sql, Store};

/// Most turns one conversation holds; a longer visit starts a new one.
pub const MAX_TURNS: i64 = 100;
/// Most conversations `GET /api/v1/conversations` lists (the newest).
pub const MAX_LISTED: usize = 20;
/// Longest HCP name, request text aside (characters).
pub const MAX_HCP_CHARS: usize = 200;
/// Longest contact address (characters): an email address's own limit.
pub const MAX_ADDRESS_CHARS: usize = 254;
/// Longest dismissal reason (characters).
pub const MAX_REASON_CHARS: usize = 1_000;
/// The contact channels a confirmed request may name.
pub const CHANNELS: &[&str] = &["email", "phone", "fax", "mail"];

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{id}", get(show_conversation))
        .route("/api/v1/medical-requests", get(list_requests))
        .route("/api/v1/medical-requests/{id}/confirm", post(confirm))
        .route("/api/v1/medical-requests/{id}/dismiss", post(dismiss))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    // A failed OS random source leaves zeros: the insert then fails on the
    // primary key rather than reuse an id silently.
    let _ = getrandom::fill(&mut b);
    format!("{prefix}-{}", hex::encode(b))
}

/// One turn of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// 1, 2, 3, …
    pub n: i64,
    /// When it was asked.
    pub at: String,
    /// As typed.
    pub question: String,
    /// As screened and answered.
    pub resolved_question: String,
    /// The product answered for.
    pub product: Option<String>,
    /// The topic terms carried forward.
    #[serde(skip)]
    pub topic: Vec<String>,
    /// Where it went.
    pub route: String,
    /// The answer text (or the escalation's message).
    pub answer: String,
    /// Its audit record.
    pub audit_id: Option<i64>,
    /// A case opened at once.
    pub case_id: Option<String>,
    /// The Medical request it left.
    pub medical_request: Option<String>,
}

/// A conversation and its turns, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// `cv-…`.
    pub id: String,
    /// The HCP of the visit.
    pub hcp: Option<String>,
    /// Started.
    pub created_at: String,
    /// Last turn.
    pub updated_at: String,
    /// The turns.
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// What a follow-up inherits: the last turn's product and topic.
    pub fn previous(&self) -> Option<Previous> {
        self.turns.last().map(|t| Previous { product: t.product.clone(), topic: t.topic.clone() })
    }

    /// The earlier questions the guard screens again with the next one: the
    /// turns that were answered (an escalated turn already went where it
    /// had to), as typed, one a line.
    pub fn earlier(&self) -> String {
        self.turns.iter().filter(|t| t.route == "answer").map(|t| t.question.replace('\n', " ") + "\n").collect()
    }
}

fn turns(c: &mut dyn Sql, id: &str) -> crate::store::Result<Vec<Turn>> {
    let rows = c.query(
        "SELECT n, at, question, resolved_question, product, topic, route, answer, audit_id, case_id, medical_request
         FROM conversation_turns WHERE conversation_id = ?1 ORDER BY n",
        crate::vals![id],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Turn {
                n: r.get(0)?,
                at: r.get(1)?,
                question: r.get(2)?,
                resolved_question: r.get(3)?,
                product: r.get(4)?,
                topic: r.get::<String>(5)?.split_whitespace().map(str::to_string).collect(),
                route: r.get(6)?,
                answer: r.get(7)?,
                audit_id: r.get(8)?,
                case_id: r.get(9)?,
                medical_request: r.get(10)?,
            })
        })
        .collect()
}

/// The conversation `id` of `owner`; 404 when it does not exist *or* is
/// someone else's (the same answer: ids are not confirmed to strangers).
pub(crate) fn load(store: &Store, id: &str, owner: &str) -> Result<Conversation, ApiError> {
    let found = store.read(|c| -> crate::store::Result<Option<Conversation>> {
        let head = c.query_opt("SELECT id, hcp, created_at, updated_at FROM conversations WHERE id = ?1 AND owner = ?2", crate::vals![id.trim(), owner])?;
        match head {
            Some(r) => {
                let id: String = r.get(0)?;
                Ok(Some(Conversation { turns: turns(c, &id)?, id, hcp: r.get(1)?, created_at: r.get(2)?, updated_at: r.get(3)? }))
            }
            None => Ok(None),
        }
    })?;
    found.ok_or_else(|| ApiError::not_found(format!("no conversation {:?} of yours: leave conversation_id out to start a new visit", id.trim())))
}

/// A turn to append (the conversation is created when `conversation` is None).
pub(crate) struct NewTurn<'a> {
    pub owner: &'a str,
    pub hcp: Option<&'a str>,
    pub question: &'a str,
    pub resolved_question: &'a str,
    pub product: Option<&'a str>,
    pub topic: &'a [String],
    pub answer: &'a crate::copilot::Answer,
    /// Leave a pending Medical request (a Medical route with no case opened).
    pub medical: Option<String>,
}

/// What [`append_turn`] stored.
pub(crate) struct Stored {
    pub conversation_id: String,
    pub n: i64,
    pub medical_request: Option<(String, String)>,
}

/// Appends a turn (and its pending Medical request), creating the
/// conversation when `conversation` is None; one transaction.
pub(crate) fn append_turn(store: &Store, conversation: Option<&str>, t: NewTurn<'_>) -> Result<Stored, ApiError> {
    let at = now();
    let a = t.answer;
    let stored = store.transaction(|tx| -> Result<Stored, crate::store::Error> {
        let id = match conversation {
            Some(id) => {
                tx.execute("UPDATE conversations SET updated_at = ?2, hcp = COALESCE(?3, hcp) WHERE id = ?1", crate::vals![id, &at, t.hcp])?;
                id.to_string()
            }
            None => {
                let id = new_id("cv");
                tx.execute("INSERT INTO conversations (id, owner, hcp, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)", crate::vals![&id, t.owner, t.hcp, &at])?;
                id
            }
        };
        let n: i64 = tx.one("SELECT COALESCE(MAX(n), 0) + 1 FROM conversation_turns WHERE conversation_id = ?1", crate::vals![&id])?;
        let audit_id = a.audit_id.and_then(|s| i64::try_from(s).ok());
        let medical = match &t.medical {
            Some(summary) => {
                let mr = new_id("mr");
                tx.execute(
                    "INSERT INTO medical_requests (id, owner, conversation_id, turn, question, typed_question, product, hcp, summary, flags_json, audit_id, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?12)",
                    crate::vals![&mr, t.owner, &id, n, t.resolved_question, t.question, t.product, t.hcp, summary,
                        serde_json::to_string(&a.flags).unwrap_or_else(|_| "[]".into()), audit_id, &at],
                )?;
                Some((mr, summary.clone()))
            }
            None => None,
        };
        tx.execute(
            "INSERT INTO conversation_turns (conversation_id, n, at, question, resolved_question, product, topic, route, answer, audit_id, case_id, medical_request)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            crate::vals![&id, n, &at, t.question, t.resolved_question, t.product, t.topic.join(" "), a.route.as_str(), &a.answer, audit_id, a.case_id.clone(),
                medical.as_ref().map(|m| m.0.clone())],
        )?;
        Ok(Stored { conversation_id: id, n, medical_request: medical })
    })?;
    Ok(stored)
}

/// How many turns the conversation has (for [`MAX_TURNS`]).
pub(crate) fn check_room(c: &Conversation) -> Result<(), ApiError> {
    if c.turns.len() as i64 >= MAX_TURNS {
        return Err(ApiError::coded(
            "bad_request",
            format!("this visit already has {MAX_TURNS} questions, the most one conversation holds: start a new visit (leave conversation_id out)"),
        ));
    }
    Ok(())
}

/// The one-line summary of what a Medical request will send.
pub(crate) fn summary(question: &str, product: Option<&str>, reason: Option<&str>) -> String {
    let q: String = question.trim().chars().take(300).collect();
    let mut s = match product {
        Some(p) => format!("Medical Information request about {p}: \"{q}\""),
        None => format!("Medical Information request: \"{q}\""),
    };
    if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) {
        s.push_str(&format!(" ({})", r.trim_end_matches('.')));
    }
    s
}

/// The rep's visits, newest first (at most [`MAX_LISTED`]), with their questions.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "{conversations: [{id, hcp, created_at, updated_at, turns}]}"), (status = 401, body = super::ErrorBody)))]
pub async fn list_conversations(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "reading your visits")?;
    let ids = visit_ids(&st.store, &user.id)?;
    let mut out = Vec::new();
    for id in ids {
        out.push(load(&st.store, &id, &user.id)?);
    }
    Ok(json(json!({"conversations": out})))
}

/// The ids of `owner`'s visits, last continued first (at most [`MAX_LISTED`]).
fn visit_ids(store: &Store, owner: &str) -> crate::store::Result<Vec<String>> {
    store.read(|c| {
        let rows = c.query("SELECT id FROM conversations WHERE owner = ?1 ORDER BY updated_at DESC, id LIMIT ?2", crate::vals![owner, MAX_LISTED])?;
        rows.iter().map(|r| r.get(0)).collect()
    })
}

/// One of the rep's visits with its turns (404 for anyone else's).
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "reps", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "{id, hcp, created_at, updated_at, turns}"), (status = 404, body = super::ErrorBody)))]
pub async fn show_conversation(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "reading your visits")?;
    Ok(json(load(&st.store, &id, &user.id)?))
}

/// A Medical request as listed.
#[derive(Debug, Serialize)]
pub struct MedicalRequest {
    /// `mr-…`.
    pub id: String,
    /// What will be sent, in one line.
    pub summary: String,
    /// The question routed (resolved).
    pub question: String,
    /// As typed.
    pub typed_question: String,
    /// The product.
    pub product: Option<String>,
    /// The HCP given with the ask.
    pub hcp: Option<String>,
    /// The visit and turn it came from.
    pub conversation_id: Option<String>,
    /// The turn.
    pub turn: Option<i64>,
    /// pending | confirmed | dismissed.
    pub state: String,
    /// When the ask was made.
    pub created_at: String,
    /// The case opened on confirmation.
    pub case_id: Option<String>,
    /// The ask's audit record.
    pub audit_id: Option<i64>,
}

const REQUEST_COLUMNS: &str = "id, summary, question, typed_question, product, hcp, conversation_id, turn, state, created_at, case_id, audit_id";

fn request_row(r: &Row) -> crate::store::Result<MedicalRequest> {
    Ok(MedicalRequest {
        id: r.get(0)?,
        summary: r.get(1)?,
        question: r.get(2)?,
        typed_question: r.get(3)?,
        product: r.get(4)?,
        hcp: r.get(5)?,
        conversation_id: r.get(6)?,
        turn: r.get(7)?,
        state: r.get(8)?,
        created_at: r.get(9)?,
        case_id: r.get(10)?,
        audit_id: r.get(11)?,
    })
}

fn get_request(store: &Store, id: &str, owner: &str) -> Result<MedicalRequest, ApiError> {
    let found = store.read(|c| -> crate::store::Result<Option<MedicalRequest>> {
        c.query_opt(&format!("SELECT {REQUEST_COLUMNS} FROM medical_requests WHERE id = ?1 AND owner = ?2"), crate::vals![id.trim(), owner])?
            .map(|r| request_row(&r))
            .transpose()
    })?;
    found.ok_or_else(|| ApiError::not_found(format!("no Medical request {:?} of yours (GET /api/v1/medical-requests lists them)", id.trim())))
}

/// The rep's Medical requests still waiting for their confirmation, oldest first.
#[utoipa::path(get, path = "/api/v1/medical-requests", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "{requests: [{id, summary, question, product, hcp, state, created_at, …}]}"), (status = 401, body = super::ErrorBody)))]
pub async fn list_requests(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "reading your Medical requests")?;
    let list = pending_requests(&st.store, &user.id)?;
    Ok(json(json!({"requests": list})))
}

/// `owner`'s Medical requests still pending, oldest first.
fn pending_requests(store: &Store, owner: &str) -> crate::store::Result<Vec<MedicalRequest>> {
    store.read(|c| {
        let rows = c.query(&format!("SELECT {REQUEST_COLUMNS} FROM medical_requests WHERE owner = ?1 AND state = 'pending' ORDER BY created_at, id"), crate::vals![owner])?;
        rows.iter().map(request_row).collect()
    })
}

/// How Medical Information may contact the HCP.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// email | phone | fax | mail.
    #[serde(default)]
    pub channel: Option<String>,
    /// The address on that channel (an email address, a phone or fax number, a postal address).
    #[serde(default)]
    pub address: Option<String>,
}

/// `POST /api/v1/medical-requests/{id}/confirm`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The HCP who asked.
    #[serde(default)]
    pub hcp: Option<String>,
    /// The request in the HCP's own words (an unsolicited request is documented as asked).
    #[serde(default)]
    pub request_text: Option<String>,
    /// The HCP consents to be contacted by Medical Information: must be true.
    #[serde(default)]
    pub consent: Option<bool>,
    /// Channel and address to contact the HCP on.
    #[serde(default)]
    pub contact: Option<Contact>,
}

/// `POST /api/v1/medical-requests/{id}/dismiss`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissRequest {
    /// Why it is not sent (e.g. "the HCP withdrew the question", "no consent").
    #[serde(default)]
    pub reason: Option<String>,
}

fn required<'a>(field: &str, v: Option<&'a str>, what: &str, max: usize) -> Result<&'a str, ApiError> {
    let v = v.map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad("empty", format!("{field} is missing or empty: {what}")))?;
    let n = v.chars().count();
    if n > max {
        return Err(ApiError::too_large(format!("{field} is {n} characters, over the {max}-character limit")));
    }
    Ok(v)
}

/// Checks a contact: a known channel and an address that fits it.
pub(crate) fn check_contact(c: Option<&Contact>) -> Result<(String, String), ApiError> {
    let c = c.ok_or_else(|| ApiError::bad("empty", "contact is missing: {\"channel\": \"email\" | \"phone\" | \"fax\" | \"mail\", \"address\": \"…\"}, how Medical Information may reach the HCP"))?;
    let channel = required("contact.channel", c.channel.as_deref(), "one of email, phone, fax, mail", 16)?.to_lowercase();
    if !CHANNELS.contains(&channel.as_str()) {
        return Err(ApiError::coded("bad_input", format!("contact.channel {channel:?} is not one of {}", CHANNELS.join(", "))));
    }
    let address = required("contact.address", c.address.as_deref(), "the HCP's address on that channel", MAX_ADDRESS_CHARS)?;
    let bad = |why: &str| ApiError::coded("bad_input", format!("contact.address {address:?} is not a usable {channel} address: {why}"));
    match channel.as_str() {
        "email" => {
            let (local, domain) = address.split_once('@').ok_or_else(|| bad("an email address has an @"))?;
            let ok = !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(bad("write it as name@domain.tld"));
            }
        }
        "phone" | "fax" => {
            if address.chars().any(|c| !(c.is_ascii_digit() || " +-().".contains(c))) {
                return Err(bad("a number has only digits, spaces and + - ( ) ."));
            }
            let digits = address.chars().filter(char::is_ascii_digit).count();
            if !(7..=15).contains(&digits) {
                return Err(bad("a number has 7 to 15 digits"));
            }
        }
        _ => {
            if address.chars().count() < 10 || !address.chars().any(|c| c.is_ascii_digit()) {
                return Err(bad("a postal address has the street and number, the town and the postal code"));
            }
        }
    }
    Ok((channel, address.to_string()))
}

/// Claims a pending request for a decision (state set in the same write), or says why not.
fn claim(store: &Store, id: &str, owner: &str, to: &str) -> Result<MedicalRequest, ApiError> {
    let r = get_request(store, id, owner)?;
    let changed = store.transaction(|c| {
        c.execute("UPDATE medical_requests SET state = ?3, decided_at = ?4 WHERE id = ?1 AND owner = ?2 AND state = 'pending'", crate::vals![&r.id, owner, to, now()])
    })?;
    if changed == 0 {
        let now = get_request(store, id, owner)?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!("Medical request {} is {} already{}", now.id, now.state, now.case_id.map(|c| format!(" (case {c})")).unwrap_or_default()),
        ));
    }
    Ok(r)
}

/// Confirms a pending Medical request: opens the MIR case with the request
/// in the HCP's words, the HCP, and their consent and contact channel on the
/// case's `opened` history entry; returns the case id.
#[utoipa::path(post, path = "/api/v1/medical-requests/{id}/confirm", tag = "reps", security(("bearer" = [])), request_body = ConfirmRequest,
    params(("id" = String, Path)),
    responses((status = 200, description = "{case_id, request}"), (status = 400, description = "a field is missing or invalid (consent must be true)", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, description = "already confirmed or dismissed", body = super::ErrorBody)))]
pub async fn confirm(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>, Body(r): Body<ConfirmRequest>) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "confirming a Medical request")?.clone();
    // Its owner only: anyone else gets the 404 of a request that does not exist.
    get_request(&st.store, &id, &user.id)?;
    let hcp = required("hcp", r.hcp.as_deref(), "the name of the HCP who asked (e.g. Dr. Lee)", MAX_HCP_CHARS)?.to_string();
    let text = required("request_text", r.request_text.as_deref(), "the request as the HCP put it", crate::copilot::MAX_QUESTION_CHARS)?.to_string();
    if r.consent != Some(true) {
        return Err(ApiError::coded(
            "bad_input",
            "consent must be true: Medical Information contacts the HCP only with their consent to be contacted; if the HCP does not consent, dismiss the request with that reason",
        ));
    }
    let (channel, address) = check_contact(r.contact.as_ref())?;
    let req = claim(&st.store, &id, &user.id, "confirmed")?;
    let note = format!("Unsolicited request confirmed by {} with the HCP: consent to be contacted given; contact by {channel}: {address}", user.id);
    let opened = st.cases.open_case_noted(
        crate::cases::NewCase {
            kind: crate::cases::CaseKind::MedicalInformation,
            product: req.product.clone(),
            question: text.clone(),
            reporter: user.id.clone(),
            hcp: Some(hcp.clone()),
            patient: None,
            suspect_product: req.product.clone(),
            event: Some("unsolicited request for medical information".into()),
            flags_json: st.store.read(|c| c.one::<String>("SELECT flags_json FROM medical_requests WHERE id = ?1", crate::vals![&req.id]))?,
            now: Utc::now(),
        },
        Some(&note),
    );
    let case = match opened {
        Ok(c) => c,
        Err(e) => {
            // Back to pending: the rep can try again.
            let _ = st.store.transaction(|c| c.execute("UPDATE medical_requests SET state = 'pending', decided_at = NULL WHERE id = ?1", crate::vals![&req.id]));
            return Err(e.into());
        }
    };
    st.store.transaction(|c| {
        c.execute(
            "UPDATE medical_requests SET case_id = ?2, request_text = ?3, confirmed_hcp = ?4, consent = 1, contact_channel = ?5, contact_address = ?6 WHERE id = ?1",
            crate::vals![&req.id, &case.id, &text, &hcp, &channel, &address],
        )
    })?;
    let mut rec = crate::audit::Record::new(&user.id, user.role.as_str(), "medical_request_confirmed");
    rec.case_id = Some(case.id.clone());
    rec.input = Some(text.clone());
    rec.route = Some("medical".into());
    rec.detail = json!({"medical_request": req.id, "ask_audit_id": req.audit_id, "conversation_id": req.conversation_id, "hcp": hcp,
        "consent": true, "contact": {"channel": channel, "address": address}, "question": req.question});
    st.audit.append(&rec)?;
    tracing::info!(user = %user.id, medical_request = %req.id, case_id = %case.id, "medical request confirmed");
    Ok(json(json!({"case_id": case.id, "request": get_request(&st.store, &req.id, &user.id)?,
        "consent": true, "contact": {"channel": channel, "address": address}})))
}

/// Dismisses a pending Medical request with the reason (audited); no case is opened.
#[utoipa::path(post, path = "/api/v1/medical-requests/{id}/dismiss", tag = "reps", security(("bearer" = [])), request_body = DismissRequest,
    params(("id" = String, Path)),
    responses((status = 200, description = "{request}"), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "already confirmed or dismissed", body = super::ErrorBody)))]
pub async fn dismiss(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>, Body(r): Body<DismissRequest>) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "dismissing a Medical request")?.clone();
    get_request(&st.store, &id, &user.id)?;
    let reason = required("reason", r.reason.as_deref(), "say why the request is not sent (e.g. the HCP withdrew it)", MAX_REASON_CHARS)?.to_string();
    let req = claim(&st.store, &id, &user.id, "dismissed")?;
    st.store.transaction(|c| c.execute("UPDATE medical_requests SET dismiss_reason = ?2 WHERE id = ?1", crate::vals![&req.id, &reason]))?;
    let mut rec = crate::audit::Record::new(&user.id, user.role.as_str(), "medical_request_dismissed");
    rec.input = Some(reason.clone());
    rec.detail = json!({"medical_request": req.id, "ask_audit_id": req.audit_id, "conversation_id": req.conversation_id, "question": req.question});
    st.audit.append(&rec)?;
    Ok(json(json!({"request": get_request(&st.store, &req.id, &user.id)?, "reason": reason})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(channel: &str, address: &str) -> Contact {
        Contact { channel: Some(channel.into()), address: Some(address.into()) }
    }

    #[test]
    fn contacts_are_checked_per_channel() {
        for (ch, addr) in [("email", "dr.lee@clinic.example"), ("EMAIL", "a@b.co"), ("phone", "+1 (555) 010-2030"), ("fax", "555 0102 030"), ("mail", "12 Elm Street, Springfield 01101")] {
            assert!(check_contact(Some(&contact(ch, addr))).is_ok(), "{ch} {addr}");
        }
        for (ch, addr) in [("email", "dr.lee"), ("email", "dr lee@clinic.example"), ("email", "@clinic.example"), ("email", "a@b"), ("phone", "555-12"),
            ("phone", "call me"), ("fax", "1234567890123456"), ("mail", "Elm St"), ("pigeon", "loft 3"), ("email", "")] {
            let e = check_contact(Some(&contact(ch, addr))).expect_err(addr);
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{ch} {addr}");
        }
        assert_eq!(check_contact(None).expect_err("missing").code(), "empty");
        let long = format!("{}@x.example", "a".repeat(MAX_ADDRESS_CHARS));
        assert_eq!(check_contact(Some(&contact("email", &long))).expect_err("long").code(), "too_large");
    }

    #[test]
    fn a_visit_holds_at_most_max_turns() {
        let turn = |n| Turn { n, at: String::new(), question: "q".into(), resolved_question: "q".into(), product: None, topic: Vec::new(),
            route: "answer".into(), answer: String::new(), audit_id: None, case_id: None, medical_request: None };
        let mut c = Conversation { id: "cv-x".into(), hcp: None, created_at: String::new(), updated_at: String::new(), turns: (1..MAX_TURNS).map(turn).collect() };
        assert!(check_room(&c).is_ok(), "{} turns leave room for one more", MAX_TURNS - 1);
        c.turns.push(turn(MAX_TURNS));
        let e = check_room(&c).expect_err("full");
        assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "bad_request"));
        // Only answered turns are screened again with the next question.
        c.turns[0].route = "pharmacovigilance".into();
        assert_eq!(c.earlier().lines().count(), MAX_TURNS as usize - 1);
    }

    /// A turn of rep `rex` about zentravia, asked as resolved.
    fn turn<'a>(question: &'a str, hcp: Option<&'a str>, topic: &'a [String], answer: &'a crate::copilot::Answer, medical: Option<String>) -> NewTurn<'a> {
        NewTurn { owner: "rex", hcp, question, resolved_question: question, product: Some("zentravia"), topic, answer, medical }
    }

    /// Visits, their turns and the Medical requests they leave: the same
    /// statements and the same results on SQLite and PostgreSQL.
    #[test]
    fn visits_and_medical_requests_are_stored_alike_on_both_backends() {
        for t in crate::store::testing::each_backend("convo_store") {
            let (who, store) = (t.name(), &t.store);
            let mut answered = crate::copilot::followup::clarify("How often?");
            answered.route = crate::guard::Route::Answer;
            answered.answer = "Every 4 weeks [1].".into();
            answered.audit_id = Some(7);
            let topic = ["liver".to_string(), "tests".to_string()];
            let first = append_turn(store, None, turn("How often are liver tests done?", Some("Dr. Lee"), &topic, &answered, None)).unwrap_or_else(|e| panic!("{who}: {e:?}"));
            assert_eq!((first.n, first.medical_request.is_none()), (1, true), "{who}");
            let id = first.conversation_id.clone();
            let mut medical = crate::copilot::followup::clarify("And in children?");
            medical.route = crate::guard::Route::Medical;
            let second = append_turn(store, Some(&id), turn("And in children?", None, &topic, &medical, Some(summary("And in children?", Some("zentravia"), None)))).unwrap();
            assert_eq!(second.n, 2, "{who}");
            let (mr, said) = second.medical_request.clone().unwrap();
            assert!(mr.starts_with("mr-") && said.contains("zentravia"), "{who}: {mr} {said}");

            let c = load(store, &id, "rex").unwrap();
            assert_eq!((c.hcp.as_deref(), c.turns.len()), (Some("Dr. Lee"), 2), "{who}: a turn without an HCP keeps the visit's");
            assert_eq!(c.turns.iter().map(|t| (t.n, t.route.as_str(), t.audit_id)).collect::<Vec<_>>(), [(1, "answer", Some(7)), (2, "medical", None)], "{who}");
            assert_eq!(c.turns[1].medical_request.as_deref(), Some(mr.as_str()), "{who}");
            assert_eq!(c.previous().unwrap().topic, topic, "{who}");
            assert_eq!(c.earlier(), "How often are liver tests done?\n", "{who}");
            assert_eq!(load(store, &id, "rita").unwrap_err().status(), StatusCode::NOT_FOUND, "{who}: someone else's visit does not exist");

            // A second visit, continued last, is listed first (times are to the millisecond).
            std::thread::sleep(std::time::Duration::from_millis(5));
            let other = append_turn(store, None, turn("Dosing?", None, &topic, &answered, None)).unwrap().conversation_id;
            assert_eq!(visit_ids(store, "rex").unwrap(), [other.clone(), id.clone()], "{who}");
            assert!(visit_ids(store, "rita").unwrap().is_empty(), "{who}");

            let pending = pending_requests(store, "rex").unwrap();
            assert_eq!(pending.iter().map(|r| (r.id.as_str(), r.state.as_str(), r.turn)).collect::<Vec<_>>(), [(mr.as_str(), "pending", Some(2))], "{who}");
            assert_eq!(get_request(store, &mr, "rita").unwrap_err().status(), StatusCode::NOT_FOUND, "{who}");
            // One decision only: the second claim is a conflict that says what happened.
            assert_eq!(claim(store, &mr, "rex", "dismissed").unwrap().state, "pending", "{who}: the request as it was");
            let e = claim(store, &mr, "rex", "confirmed").unwrap_err();
            assert_eq!(e.status(), StatusCode::CONFLICT, "{who}");
            assert!(pending_requests(store, "rex").unwrap().is_empty(), "{who}");
            assert_eq!(get_request(store, &mr, "rex").unwrap().state, "dismissed", "{who}");
            // Turns are append-only on both.
            let e = store.transaction(|c| c.execute("UPDATE conversation_turns SET answer = 'x'", &[])).unwrap_err();
            assert!(e.to_string().contains("append-only"), "{who}: {e}");
        }
    }

    #[test]
    fn a_summary_names_product_question_and_reason() {
        assert_eq!(summary(" Can it be used in children? ", Some("zentravia"), Some("pediatric use is not in the label.")),
            "Medical Information request about zentravia: \"Can it be used in children?\" (pediatric use is not in the label)");
        assert_eq!(summary("x", None, None), "Medical Information request: \"x\"");
    }
}
