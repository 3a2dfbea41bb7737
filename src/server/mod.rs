//! The HTTP service: DESIGN.md's route table under `/api/v1`, an
//! OpenAI-compatible face under `/v1`, health and metrics, and the web UI.
//!
//! Why it is built this way:
//!
//! - **One pipeline.** Every route that answers (`/api/v1/ask`, `/email`,
//!   `/summarize`, `/v1/chat/completions`) calls the same
//!   [`Copilot::run`](crate::copilot::Copilot::run) the CLI calls, which
//!   appends the audit record *before* anything reaches the response, so
//!   nothing is shown untraced and a case the guard opened is stored even if
//!   the client has gone.
//! - **Bounded work.** The pipeline is CPU-bound and runs on blocking
//!   threads behind a [`work::Gate`]: at most `max_in_flight` requests work
//!   at once, at most `max_queued` wait; beyond that the answer is `503` with
//!   `Retry-After`, never unbounded memory. A request that has been admitted
//!   always runs to its end (its permits travel with the blocking task), so
//!   timeouts and shutdown never cut a case or an audit record in half.
//! - **Explicit limits.** Body size, question length, notes size and the
//!   per-request time are in [`Limits`], each answered with a JSON error that
//!   says which limit and how to fix the request.
//! - **Roles at the handler.** [`auth::Auth`] turns a bearer token into a
//!   registry [`crate::users::User`] (401 otherwise); each handler states the
//!   roles it admits (403 otherwise), next to the code it guards.
//!
//! One file per resource; this file holds the state, the router, the error
//! answer and the request id:
//!
//! | file | routes |
//! | --- | --- |
//! | `me.rs` | `GET /api/v1/me`, `GET /api/v1/products` (and the product check) |
//! | `sessions.rs` | `POST/DELETE /api/v1/sessions`, `GET /api/v1/sessions/current`, `POST /api/v1/sessions/end-all`: password sign-in, session cookies |
//! | `ask.rs` | `POST /api/v1/ask` (JSON or an event stream) |
//! | `conversations.rs` | `GET /api/v1/conversations…`, `/api/v1/medical-requests…`: a rep's visits and Medical requests |
//! | `drafts.rs` | `POST /api/v1/email`, `POST /api/v1/summarize` |
//! | `prompts.rs` | `/api/v1/prompts…`: the registry and its e-signatures |
//! | `cases.rs` | `/api/v1/cases…`: the Medical / PV queue, a rep's reports, the AE intake; `GET /api/v1/case-owners` |
//! | `audit.rs` | `/api/v1/audit…`: search and verify the log |
//! | `evals.rs` | `/api/v1/evals…`: eval runs and their reports |
//! | `documents.rs` | `/api/v1/documents…`: a citation's approved source (section HTML, the PDF) |
//! | `health.rs` | `GET /healthz`, `GET /readyz` |
//! | `oidc.rs` | `GET /auth/oidc/config`, `/auth/oidc/login`, `/auth/oidc/callback`: single sign-on (pages, not JSON) |
//! | `openai.rs` | `/v1/chat/completions`, `/v1/models` |
//! | `metrics.rs` | `GET /metrics` |
//! | `index_watch.rs` | (no route) follows a versioned index root: swaps in each newly published version |
//! | `openapi.rs` | `GET /api/v1/openapi.json` |
//! | `ui.rs` | the web UI |
//!
//! with `auth.rs` (bearer tokens, roles) and `work.rs` (the [`Gate`]).
//! The server imports nothing from the `cli` module: `onlabel serve` builds the
//! copilot and hands in the eval runner ([`EvalRunner`]).

pub mod auth;
mod ask;
mod audit;
mod cases;
mod conversations;
mod documents;
mod drafts;
mod evals;
mod health;
pub mod index_watch;
mod me;
mod metrics;
pub mod oidc;
mod openai;
pub mod openapi;
mod prompts;
mod sessions;
mod ui;
mod work;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

use crate::prompts::PromptFile;
use crate::copilot::Copilot;
use crate::error::Coded;
use crate::store::Store;

pub use work::Gate;

/// Every limit the server enforces, each with its own error.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest question or topics text, characters (413 beyond).
    pub max_question_chars: usize,
    /// Largest visit notes, bytes (413 beyond); the CLI's limit too.
    pub max_notes_bytes: usize,
    /// Longest time a request may take before `504` (its work still finishes
    /// and is audited).
    pub request_timeout: Duration,
    /// Pipeline requests working at once.
    pub max_in_flight: usize,
    /// Pipeline requests waiting for a worker; beyond, `503` + `Retry-After`.
    pub max_queued: usize,
    /// Failed sign-ins per client address / user before `429` + `Retry-After`,
    /// and per user before the user is locked.
    pub sign_in: crate::users::SignInPolicy,
    /// When browser sessions end (idle and absolute timeouts).
    pub sessions: crate::users::SessionPolicy,
    /// Mark the session cookie `Secure` (browsers then send it over https
    /// only): set when clients reach the server through https.
    pub secure_cookie: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 256 * 1024,
            max_question_chars: 2_000,
            max_notes_bytes: crate::copilot::MAX_NOTES_BYTES as usize,
            request_timeout: Duration::from_secs(60),
            max_in_flight: 16,
            max_queued: 64,
            sign_in: crate::users::SignInPolicy::default(),
            sessions: crate::users::SessionPolicy::default(),
            secure_cookie: false,
        }
    }
}

/// Runs one eval for `POST /api/v1/evals` and for an evidence request
/// ([`crate::eval::recorded`], through a copilot `onlabel serve` builds):
/// the [`EvalTask`] names the suite (already checked to be under `evals/`),
/// the report directory, the signed-in user, the candidate version and the
/// review questions; returns the `eval --json` document, or why the run
/// failed (the message with its causes, shown as the job's `error`).
pub type EvalRunner = dyn Fn(EvalTask) -> Result<serde_json::Value, String> + Send + Sync;

pub use evals::EvalTask;

/// Loads the prompt the copilot may run now (the registry's live version):
/// called after an approval or rollback so the next answer uses it.
pub type PromptLoader = dyn Fn(&Store) -> crate::Result<PromptFile> + Send + Sync;

/// What `onlabel serve` hands the server.
pub struct Config {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// The data directory (onlabel.sqlite, unless the state is on
    /// PostgreSQL: [`AppState::on_database`]; eval reports are written here either way).
    pub data: PathBuf,
    /// The repository root the registry's paths are relative to.
    pub root: PathBuf,
    /// The index directory (for the audit context).
    pub index: PathBuf,
    /// The eval thresholds file an approval is judged against.
    pub thresholds: PathBuf,
    /// The products listing (`onlabel products --json`'s `products`).
    pub products: serde_json::Value,
    /// Limits.
    pub limits: Limits,
    /// Runs evals for compliance.
    pub eval: Box<EvalRunner>,
    /// Reloads the live prompt after a registry change (none without a model).
    pub reload_prompt: Option<Box<PromptLoader>>,
}

/// Errors of the server module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another server running there? pick another --addr)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind_failed",
            Error::Serve(_) => "serve_failed",
            Error::Store(e) => e.code(),
            Error::Audit(e) => e.code(),
        }
    }
}

/// Shared state of every handler.
pub struct AppState {
    /// The pipeline (write-locked only to swap in a newly approved prompt).
    pub(crate) copilot: RwLock<Copilot>,
    /// The store: users, registry, cases.
    pub(crate) store: Arc<Store>,
    /// The audit log (its own connection to the same file).
    pub(crate) audit: crate::audit::Audit,
    /// The case queue.
    pub(crate) cases: crate::cases::CaseStore,
    pub(crate) root: PathBuf,
    pub(crate) data: PathBuf,
    /// The `--index` given: a flat index, or a versioned root the
    /// [`index_watch`] follows (the directory answering now is the copilot's
    /// `index().dir()`).
    pub(crate) index: PathBuf,
    pub(crate) thresholds: PathBuf,
    /// The products listing of the index version served now (replaced with it).
    pub(crate) products: RwLock<serde_json::Value>,
    pub(crate) limits: Limits,
    pub(crate) gate: Gate,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) tokens: auth::TokenCache,
    pub(crate) eval: Box<EvalRunner>,
    pub(crate) reload_prompt: Option<Box<PromptLoader>>,
    pub(crate) ready: AtomicBool,
    /// Single sign-on, when the config file sets it up ([`AppState::with_oidc`]).
    pub(crate) oidc: Option<Arc<crate::users::oidc::Sso>>,
    /// Following a versioned index root ([`AppState::with_index_watch`]).
    pub(crate) index_watch: Option<index_watch::IndexWatch>,
    /// Live prompt versions another process approved that could not be
    /// loaded here (logged once each, not on every question).
    pub(crate) prompt_misses: std::sync::Mutex<std::collections::HashSet<String>>,
    /// This server among the replicas sharing the store (`HOST:PORT`): the
    /// runner of the eval jobs it starts ([`evals::mark_interrupted`]).
    pub(crate) runner: String,
}

/// `HOST:PORT` of a server listening on `addr` (the kernel's host name): the
/// same after a restart on the same address, distinct between replicas.
fn runner_id(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
    let host = host.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "localhost".into());
    if addr.port() == 0 {
        format!("{host}:pid{}", std::process::id()) // an ephemeral port: no earlier life to recognise
    } else {
        format!("{host}:{}", addr.port())
    }
}

/// Shared state, as handlers see it.
pub type State = Arc<AppState>;

impl AppState {
    /// Builds the state over an already built copilot, with the state in
    /// the SQLite store of `config.data`.
    pub fn new(copilot: Copilot, config: Config) -> Result<AppState, Error> {
        let db = crate::store::Database::Sqlite(config.data.join(crate::store::FILE_NAME));
        AppState::on_database(copilot, config, &db)
    }

    /// Builds the state over an already built copilot, with the state in
    /// `db` (the SQLite file or PostgreSQL, `--database`).
    pub fn on_database(copilot: Copilot, config: Config, db: &crate::store::Database) -> Result<AppState, Error> {
        if let crate::store::Database::Sqlite(_) = db {
            std::fs::create_dir_all(&config.data).map_err(|source| crate::store::Error::Io { path: config.data.clone(), source })?;
        }
        let store = Arc::new(Store::connect(db)?);
        let audit = crate::audit::Audit::connect(db)?;
        let cases = crate::cases::CaseStore::from_store(store.clone());
        // Eval runs a stopped server left behind say so (their ids stay valid);
        // those another live replica runs are left alone.
        let runner = runner_id(config.addr);
        evals::mark_interrupted(&store, &runner, true, chrono::Utc::now())?;
        let mut metrics = metrics::Metrics::default();
        metrics.serving_index(copilot.index().version());
        if let Some(server) = copilot.grounded().and_then(|g| g.model.remote()) {
            metrics.watch_generator(Arc::clone(server));
        }
        Ok(AppState {
            copilot: RwLock::new(copilot),
            store,
            audit,
            cases,
            root: config.root,
            data: config.data,
            index: config.index,
            thresholds: config.thresholds,
            products: RwLock::new(config.products),
            gate: Gate::new(config.limits.max_in_flight, config.limits.max_queued),
            limits: config.limits,
            metrics,
            tokens: auth::TokenCache::default(),
            eval: config.eval,
            reload_prompt: config.reload_prompt,
            ready: AtomicBool::new(true),
            oidc: None,
            index_watch: None,
            prompt_misses: Default::default(),
            runner,
        })
    }

    /// Follows the versioned index root `--index` names: every
    /// [`index_watch::IndexWatch::every`] the server reads its `CURRENT`
    /// pointer and swaps in a newly published version (see [`index_watch`]).
    pub fn with_index_watch(mut self, watch: index_watch::IndexWatch) -> AppState {
        self.index_watch = Some(watch);
        self
    }
}

/// The whole HTTP surface over `state`.
pub fn router(state: State) -> Router {
    let limits = state.limits.clone();
    let api = me::routes()
        .merge(sessions::routes())
        .merge(ask::routes())
        .merge(conversations::routes())
        .merge(drafts::routes())
        .merge(prompts::routes())
        .merge(cases::routes())
        .merge(audit::routes())
        .merge(evals::routes())
        .merge(documents::routes())
        .merge(health::routes())
        .merge(oidc::routes())
        .merge(openai::routes());
    Router::new()
        .merge(api)
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        // Every answer is JSON, even for a path or a method no route takes.
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|p: Box<dyn std::any::Any + Send>| {
            let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            ApiError::internal(format!("panic: {what}")).into_response()
        }))
        // Inside the trace span (its request id is in the log line) and
        // outside the panic catcher: every 500 is answered and logged here.
        .layer(axum::middleware::from_fn(internal_errors))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
                    let client = client_request_id(req.headers());
                    // Never the body or the query string: they may carry a patient's details.
                    tracing::info_span!("request", request_id = %id, client_request_id = client.as_deref(), method = %req.method(),
                        path = %req.uri().path(), user = tracing::field::Empty, route = tracing::field::Empty)
                })
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(header::HeaderName::from_static(REQUEST_ID)))
        .layer(tower_http::request_id::SetRequestIdLayer::new(header::HeaderName::from_static(REQUEST_ID), RequestIds::default()))
        .layer(axum::middleware::map_request(keep_client_request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server hit a bug answering this request; nothing stored was changed by the failed step; report it with the x-request-id").into_response()
        }))
        .with_state(state)
}

/// The request id header set on every request and response.
pub const REQUEST_ID: &str = "x-request-id";

/// Where a client's own `x-request-id` is kept (bounded) once the server has
/// replaced it with its own: request ids are made by the server only.
pub const CLIENT_REQUEST_ID: &str = "x-client-request-id";

/// Longest client request id kept, characters (printable ASCII only).
pub const MAX_CLIENT_REQUEST_ID: usize = 64;

/// Moves a client's `x-request-id` to [`CLIENT_REQUEST_ID`], cut to
/// [`MAX_CLIENT_REQUEST_ID`] printable ASCII characters (anything else is
/// dropped), so that the request-id layer always makes the server's own id
/// and logs and audit records carry the client's only as
/// `client_request_id`. A client's own `x-client-request-id` is discarded.
async fn keep_client_request_id(mut req: Request) -> Request {
    let headers = req.headers_mut();
    headers.remove(CLIENT_REQUEST_ID);
    if let Some(v) = headers.remove(REQUEST_ID) {
        let kept: String = v.as_bytes().iter().filter(|b| b.is_ascii_graphic()).take(MAX_CLIENT_REQUEST_ID).map(|&b| b as char).collect();
        if let Ok(v) = HeaderValue::from_str(&kept) {
            if !kept.is_empty() {
                headers.insert(CLIENT_REQUEST_ID, v);
            }
        }
    }
    req
}

/// The client's own request id, bounded (see [`keep_client_request_id`]).
pub(crate) fn client_request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get(CLIENT_REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The request id the request-id layer set (`-` if none).
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
}

/// The day a request is answered on (expiry is judged against it).
pub(crate) fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// Request ids: a per-process random prefix and a counter (`3f2a…-17`).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        RequestIds { prefix: hex::encode(b).into(), next: Arc::new(AtomicU64::new(1)) }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// Serves `state` on `addr` until SIGINT/SIGTERM, then stops accepting,
/// finishes every request in flight (and the work behind it) and returns.
pub async fn serve(state: State, addr: SocketAddr, on_listening: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    evals::spawn_heartbeat(state.clone());
    let local = listener.local_addr().map_err(Error::Serve)?;
    on_listening(local);
    let app = router(state.clone());
    let watcher = state.index_watch.as_ref().map(|_| tokio::spawn(index_watch::follow(state.clone())));
    let st = state.clone();
    // The peer address feeds the sign-in throttle (`auth::attempt`).
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            st.ready.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
        .map_err(Error::Serve)?;
    if let Some(w) = watcher {
        w.abort();
    }
    // Work whose client went away (timeouts) still holds its permit: wait for it.
    state.gate.drain().await;
    tracing::info!("stopped; every admitted request finished");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// An error answer: `{"error": {"code", "message"}}` with its status.
///
/// The code is a key of [`crate::error::CODES`]; a module error becomes an
/// `ApiError` through that table ([`From`] for any [`Coded`] error), so the
/// status is never decided twice. A 500 carries its detail only to the log:
/// the body says `internal error (request id …)` (see [`internal_errors`]).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// What went wrong inside, for the log only (5xx).
    detail: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable, machine-readable code (e.g. `unauthorized`, `forbidden`, `too_large`; `docs/errors.md` lists them all).
    code: String,
    /// What is wrong and how to fix it (for `internal`: only the request id).
    message: String,
    /// The request id, on a 500 (the server's log has the detail under it).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

/// The detail of a 500, handed from [`ApiError::into_response`] to
/// [`internal_errors`] (which logs it once, with the request id).
#[derive(Clone)]
struct InternalDetail(String);

/// The one 500 body: nothing but the generic message and the request id.
fn internal_body(request_id: &str) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: crate::error::INTERNAL.to_string(),
            message: format!("internal error (request id {request_id})"),
            request_id: Some(request_id.to_string()),
        },
    }
}

impl ApiError {
    /// An error with its status, stable code (a row of [`crate::error::CODES`],
    /// which a test checks) and message. Prefer [`ApiError::coded`].
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None, detail: None }
    }
    /// An error whose status is its code's row of the table.
    pub fn coded(code: &'static str, message: impl Into<String>) -> ApiError {
        let status = StatusCode::from_u16(crate::error::http_status(code)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, code, message)
    }
    fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A 500: `e` goes to the log (once, with the request id), never to the client.
    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        let mut a = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, crate::error::INTERNAL, "internal error");
        a.detail = Some(e.to_string());
        a
    }
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// The body, for an answer that is already under way (an event stream's
    /// `error` event): a 500 is logged here, once, and answered generically.
    pub(crate) fn to_body(&self, request_id: &str) -> serde_json::Value {
        let body = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id, error = self.detail.as_deref().unwrap_or(&self.message), "internal error");
            internal_body(request_id)
        } else {
            ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message.clone(), request_id: None } }
        };
        serde_json::to_value(body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            // The body is rewritten with the request id by `internal_errors`.
            let detail = self.detail.unwrap_or(self.message);
            let mut r = (self.status, axum::Json(internal_body("-"))).into_response();
            r.extensions_mut().insert(InternalDetail(detail));
            return r;
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message, request_id: None } };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 names the scheme it wants.
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
        }
        r
    }
}

/// The challenge every 401 carries.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"onlabel\"";

/// Any module error, through the one table: its code's HTTP status, and its
/// message for a client error. A server-side failure never shows its message
/// (it may name files or SQL): a 500 is [`ApiError::internal`], another 5xx
/// (`escalation_failed`, `overloaded`) says the table's meaning.
impl<E: Coded> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        let code = e.code();
        let Some(row) = crate::error::lookup(code) else {
            return ApiError::internal(format!("{code} (not in the code table): {e}"));
        };
        let status = StatusCode::from_u16(row.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(secs) = e.retry_after() {
            let mut r = ApiError::new(status, code, e.to_string());
            r.retry_after = Some(secs);
            return r;
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(format!("{code}: {e}"));
        }
        if status.is_server_error() {
            tracing::error!(code, error = %e, "request failed");
            return ApiError::new(status, code, row.meaning);
        }
        ApiError::new(status, code, e.to_string())
    }
}

/// Turns every 500 into the one generic body with the request id, and logs
/// its detail once: errors from handlers ([`ApiError::internal`]), from the
/// panic catcher, and any other layer's bare 500.
async fn internal_errors(req: Request, next: axum::middleware::Next) -> Response {
    let id = request_id(req.headers());
    let mut r = next.run(req).await;
    if r.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return r;
    }
    let detail = r.extensions_mut().remove::<InternalDetail>().map_or_else(|| "a 500 without detail".to_string(), |d| d.0);
    tracing::error!(request_id = %id, error = %detail, "internal error");
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(internal_body(&id))).into_response()
}

/// The rejection of a body extractor as an [`ApiError`]: 413 over the body
/// limit, 415 for a JSON route without a JSON content type, 400 otherwise.
fn body_rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("the request body is over the server's body limit (see `onlabel serve --help`, --max-body); send less text, e.g. one visit's notes at a time"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::coded("not_json", "send the body as JSON with `Content-Type: application/json`"),
        _ => ApiError::bad("bad_json", format!("the body is not the JSON this route takes: {text}")),
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: 413 for a body over the
/// limit, 400 naming the field for bad JSON, 415 without a JSON content type.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(r) => Err(body_rejection(r.status(), r.body_text())),
        }
    }
}

/// The raw body bytes, with [`Body`]'s rejections (413 over the body limit):
/// for a route whose body may be empty.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state).await.map(RawBody).map_err(|r| body_rejection(r.status(), r.body_text()))
    }
}

/// `Query<T>` whose rejection is a JSON `bad_query` (400), naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r| ApiError::coded("bad_query", format!("the query string is not what this route takes: {}", r.body_text())))
    }
}

/// `Path<T>` whose rejection is a JSON `bad_url` (400), or a 500 when the
/// route itself is wrong (a bug).
pub struct UrlPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for UrlPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(UrlPath(p.0)),
            Err(r) if r.status().is_server_error() => Err(ApiError::internal(r.body_text())),
            Err(r) => Err(ApiError::coded("bad_url", format!("the URL path does not parse: {}", r.body_text()))),
        }
    }
}

/// No route at this path: a JSON 404 (the router's fallback).
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}; the API is described at GET /api/v1/openapi.json", uri.path()))
}

/// A route without this method: a JSON 405 (axum adds the `Allow` header).
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::coded(
        "method_not_allowed",
        format!("{} does not take {method}; the Allow header lists what it takes (GET /api/v1/openapi.json describes every route)", uri.path()),
    )
}

/// Ok JSON.
pub(crate) fn json<T: Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_error_takes_its_status_from_the_table_and_a_server_failure_hides_its_detail() {
        let e = ApiError::from(crate::copilot::Error::BadQuestion("the question is 2001 characters".into()));
        assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "bad_question"));
        let e = ApiError::from(crate::Error::Prompts(crate::prompts::Error::NotFound { id: "x@9".into() }));
        assert_eq!((e.status(), e.code()), (StatusCode::NOT_FOUND, "prompt_not_found"));
        let e = ApiError::from(crate::cases::Error::BadInput { field: "owner", reason: "empty".into() });
        assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "bad_input"));
        let store = || crate::store::Error::Corrupt { path: "/secret/onlabel.sqlite".into(), detail: "page 7".into() };
        let e = ApiError::from(crate::users::Error::Store(store()));
        assert_eq!((e.status(), e.code()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
        assert!(!e.message.contains("secret") && e.detail.as_deref().is_some_and(|d| d.contains("store_corrupt") && d.contains("secret")));
        let body = e.to_body("ab12-7");
        assert_eq!(body, serde_json::json!({"error": {"code": "internal", "message": "internal error (request id ab12-7)", "request_id": "ab12-7"}}));
        // A case that could not be opened: 503 with the table's words (report by phone), not the store's.
        let e = ApiError::from(crate::copilot::Error::Cases(crate::cases::Error::Store(store())));
        assert_eq!((e.status(), e.code()), (StatusCode::SERVICE_UNAVAILABLE, "escalation_failed"));
        assert!(e.message.contains("phone") && !e.message.contains("secret"), "{}", e.message);
    }

    #[test]
    fn a_401_carries_the_bearer_challenge_and_others_do_not() {
        let r = ApiError::coded("unauthorized", "no token").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some(WWW_AUTHENTICATE));
        let r = ApiError::coded("forbidden", "wrong role").into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}


crate::coded!(Error);
