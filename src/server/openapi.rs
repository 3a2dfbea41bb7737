//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route
//! (utoipa, from the handlers' own annotations, so it cannot drift from them;
//! `tests/it/server.rs` checks that every route answers as documented).

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ask, audit, cases, conversations, documents, drafts, evals, health, me, metrics, oidc, openai, prompts, sessions, State};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "OnLabel", description = "Cited answers from MLR-approved documents only; a guard that sends adverse events and off-label asks to Pharmacovigilance and Medical."),
    paths(
        me::me, me::products, ask::ask, drafts::email, drafts::summarize,
        conversations::list_conversations, conversations::show_conversation, conversations::list_requests, conversations::confirm, conversations::dismiss,
        prompts::list_prompts, prompts::propose, prompts::show_prompt, prompts::diff_prompt, prompts::submit, prompts::approve, prompts::reject,
        cases::list_cases, cases::show_case, cases::case_action, cases::show_intake, cases::put_intake, cases::case_owners,
        audit::audit_search, audit::audit_verify, evals::start_eval, evals::show_eval, evals::eval_report,
        documents::show_document, documents::document_file,
        prompts::request_evidence, prompts::list_evidence, prompts::review, evals::list_suites, audit::audit_record, audit::audit_export,
        health::healthz, health::readyz, metrics::metrics,
        openai::chat, openai::models,
        sessions::sign_in, sessions::current, sessions::sign_out, sessions::end_all,
        oidc::config, oidc::login, oidc::callback,
    ),
    components(schemas(super::ErrorBody, super::ErrorDetail, ask::AskRequest, drafts::EmailRequest, drafts::SummarizeRequest,
        prompts::ProposeRequest, prompts::SignRequest, cases::CaseActionRequest, crate::cases::intake::Intake,
        conversations::ConfirmRequest, conversations::Contact, conversations::DismissRequest, evals::EvalRequest, openai::ChatRequest, openai::Message,
        sessions::SignInRequest, sessions::SessionBody, sessions::SessionUser, sessions::EndAllBody)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        // The browser's session cookie (POST /api/v1/sessions); with it, a
        // request that changes something also sends X-CSRF-Token.
        c.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::auth::COOKIE))));
    }
}

/// The route of this file.
pub fn routes() -> Router<State> {
    Router::new().route("/api/v1/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
}
