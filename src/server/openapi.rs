//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route
//! (utoipa, from the handlers' own annotations, so it cannot drift from them;
//! `tests/it/server.rs` checks that every route answers as documented).

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, api, metrics, openai, State};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "OnLabel", description = "Cited answers from MLR-approved documents only; a guard that sends adverse events and off-label asks to Pharmacovigilance and Medical."),
    paths(
        api::me, api::products, api::ask, api::email, api::summarize,
        admin::list_prompts, admin::propose, admin::show_prompt, admin::diff_prompt, admin::submit, admin::approve, admin::reject,
        admin::list_cases, admin::show_case, admin::case_action,
        admin::audit_search, admin::audit_verify, admin::start_eval, admin::show_eval, admin::eval_report,
        admin::healthz, admin::readyz, metrics::metrics,
        openai::chat, openai::models,
    ),
    components(schemas(super::ErrorBody, super::ErrorDetail, api::AskRequest, api::EmailRequest, api::SummarizeRequest,
        admin::ProposeRequest, admin::SignRequest, admin::CaseActionRequest, admin::EvalRequest, openai::ChatRequest, openai::Message)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The route of this file.
pub fn routes() -> Router<State> {
    Router::new().route("/api/v1/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
}
