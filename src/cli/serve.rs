//! `onlabel serve`: the HTTP API and web UI ([`crate::server`]) over the
//! same copilot `ask` builds, the live approved prompt included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::query::copilot_with;
use super::{eval, today, QueryArgs};
use crate::prompts::live_prompt;
use crate::server::{Config, Limits};
use crate::users::{SessionPolicy, SignInPolicy};

/// Options of `onlabel serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub(super) q: QueryArgs,
    /// Address to listen on (loopback by default; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080", env = "ONLABEL_ADDR")]
    addr: SocketAddr,
    /// The repository root the prompt registry's paths are relative to.
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    root: PathBuf,
    /// The eval thresholds an approval is judged against (relative to --root).
    #[arg(long, default_value = "evals/thresholds.toml", env = "ONLABEL_THRESHOLDS")]
    thresholds: PathBuf,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body: usize,
    /// Longest question, characters.
    #[arg(long, default_value_t = Limits::default().max_question_chars)]
    max_question: usize,
    /// Seconds before a request is answered 504 (its work still finishes and is audited).
    #[arg(long, default_value_t = Limits::default().request_timeout.as_secs())]
    timeout: u64,
    /// Requests the pipeline works on at once.
    #[arg(long, default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Requests that may wait for the pipeline; beyond, 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().max_queued)]
    max_queue: usize,
    /// Length of the failed sign-in counting window, seconds.
    #[arg(long, env = "ONLABEL_SIGN_IN_WINDOW_SECS", default_value_t = SignInPolicy::default().window_secs)]
    sign_in_window: u64,
    /// Failed sign-ins from one client address (or for one user) in a window
    /// after which its requests are answered 429 with Retry-After until the window ends.
    #[arg(long, env = "ONLABEL_SIGN_IN_THROTTLE_AFTER", default_value_t = SignInPolicy::default().throttle_after)]
    sign_in_throttle_after: u32,
    /// Failed sign-ins for one user in a window after which the user is locked
    /// until an admin runs `onlabel users unlock`.
    #[arg(long, env = "ONLABEL_SIGN_IN_LOCK_AFTER", default_value_t = SignInPolicy::default().lock_after)]
    sign_in_lock_after: u32,
    /// A browser session with no request for this many seconds ends (sign in again).
    #[arg(long, env = "ONLABEL_SESSION_IDLE_SECS", default_value_t = SessionPolicy::default().idle_secs)]
    session_idle: u64,
    /// A browser session ends this many seconds after sign-in, however active.
    #[arg(long, env = "ONLABEL_SESSION_ABSOLUTE_SECS", default_value_t = SessionPolicy::default().absolute_secs)]
    session_absolute: u64,
    /// Mark the session cookie Secure (sent over https only): set this when
    /// browsers reach the server through https (a TLS-terminating proxy).
    #[arg(long, env = "ONLABEL_SECURE_COOKIE")]
    secure_cookie: bool,
    /// When --index is a versioned root (`onlabel index publish`): seconds
    /// between reads of its CURRENT pointer; a newly published version is
    /// served within this plus the time to open it. 0: never switch.
    #[arg(long, env = "ONLABEL_INDEX_POLL_SECS", default_value_t = crate::server::index_watch::DEFAULT_POLL_SECS)]
    index_poll_secs: u64,
}

/// Runs the server until SIGINT/SIGTERM; with single sign-on when the
/// config file has an `[oidc]` table (its client secret may come from
/// `ONLABEL_OIDC_CLIENT_SECRET`, which wins over the file).
pub fn run(a: &ServeArgs, db: &crate::store::Database, data: &std::path::Path, oidc: Option<&crate::users::oidc::OidcConfig>) -> anyhow::Result<i32> {
    let sso = oidc
        .map(|c| crate::users::oidc::Settings::from_config(c, std::env::var("ONLABEL_OIDC_CLIENT_SECRET").ok()))
        .transpose()?
        .map(crate::users::oidc::Sso::new);
    let sign_in = SignInPolicy { window_secs: a.sign_in_window, throttle_after: a.sign_in_throttle_after, lock_after: a.sign_in_lock_after };
    sign_in.check().map_err(|reason| super::error::Error::BadInput { field: "--sign-in-*", reason })?;
    let sessions = SessionPolicy { idle_secs: a.session_idle, absolute_secs: a.session_absolute };
    sessions.check().map_err(|reason| super::error::Error::BadInput { field: "--session-*", reason })?;
    let store = crate::store::Store::connect(db)?;
    let root = a.root.clone();
    let prompt_path = a.q.gen.prompt.clone();
    let copilot = copilot_with(&a.q, Some(db), |p| Ok(live_prompt(p, &store, &root)?))?
        .with_drafts(crate::copilot::DraftTemplates::live(&store, &root)?);
    drop(store);
    if let Some(server) = copilot.grounded().and_then(|g| g.model.remote()) {
        // Ask for the model's identity now, so that the first answer does
        // not wait for it; a server that is down is not fatal (answers are
        // quoted until it answers).
        match server.probe() {
            Ok(id) => tracing::info!(url = server.url(), model = %id.name, sha256 = %id.sha256, grammar = server.sends_grammar(), "inference server ready"),
            Err(e) => tracing::warn!(url = server.url(), error = %e, "the inference server does not answer yet; answers are quoted until it does"),
        }
    }
    let index = a.q.index()?.to_path_buf();
    // The listing of the very version the copilot opened (CURRENT may move on meanwhile).
    let catalogue = crate::index::catalogue::Catalogue::of(copilot.index()).map_err(super::error::index_error)?;
    if catalogue.rebuilt {
        eprintln!("note: {}", crate::index::catalogue::REBUILT_NOTE);
    }
    let products = catalogue.listing(a.q.as_of.unwrap_or_else(today));
    let max_poll = crate::server::index_watch::MAX_POLL_SECS;
    if a.index_poll_secs > max_poll {
        return Err(super::error::Error::BadInput {
            field: "--index-poll-secs",
            reason: format!("{} is over {max_poll}: a withdrawn document would stay citable that long on this replica", a.index_poll_secs),
        }
        .into());
    }
    let watch = (crate::index::versions::is_root(&index) && a.index_poll_secs > 0).then(|| {
        crate::server::index_watch::IndexWatch::new(index.clone(), Duration::from_secs(a.index_poll_secs), a.q.as_of)
    });
    if let Some(v) = copilot.index().version() {
        tracing::info!(index_version = v, poll_secs = a.index_poll_secs, "serving a versioned index root");
    }
    let has_model = copilot.grounded().is_some();
    let q = a.q.clone();
    let (root2, thresholds2) = (a.root.clone(), a.thresholds.clone());
    let db2 = db.clone();
    if a.max_question > crate::copilot::MAX_QUESTION_CHARS {
        tracing::warn!(
            max_question = a.max_question,
            copilot_limit = crate::copilot::MAX_QUESTION_CHARS,
            "--max-question is above the copilot's own question limit: longer questions are answered 413 at the copilot's limit"
        );
    }
    let config = Config {
        addr: a.addr,
        data: data.to_path_buf(),
        root: a.root.clone(),
        index,
        thresholds: if a.thresholds.is_absolute() { a.thresholds.clone() } else { a.root.join(&a.thresholds) },
        products,
        limits: Limits {
            max_body_bytes: a.max_body,
            max_question_chars: a.max_question,
            request_timeout: Duration::from_secs(a.timeout.max(1)),
            max_in_flight: a.max_in_flight.max(1),
            max_queued: a.max_queue,
            sign_in,
            sessions,
            secure_cookie: a.secure_cookie,
            ..Limits::default()
        },
        eval: Box::new(move |mut task: crate::server::EvalTask| {
            let mut progress = std::mem::replace(&mut task.progress, Box::new(|_, _| {}));
            let mut run = || -> anyhow::Result<serde_json::Value> {
                let opts = eval::server_options(&q, &task, root2.clone(), thresholds2.clone())?;
                let audit = crate::audit::Audit::connect(&db2)?;
                Ok(eval::evaluate(&q, &opts, Some(task.user.clone()), &audit, &mut *progress)?.json)
            };
            // The job's `error`: the message with every cause.
            run().map_err(|e| format!("{e:#}"))
        }),
        reload_prompt: has_model.then(|| {
            let root = a.root.clone();
            Box::new(move |store: &crate::store::Store| live_prompt(&prompt_path, store, &root)) as Box<crate::server::PromptLoader>
        }),
    };
    let addr = config.addr;
    let mut state = crate::server::AppState::on_database(copilot, config, db)?;
    if let Some(w) = watch {
        state = state.with_index_watch(w);
    }
    if let Some(sso) = sso {
        tracing::info!(issuer = sso.settings().issuer.as_str(), "single sign-on is on");
        state = state.with_oidc(sso);
    }
    let state = std::sync::Arc::new(state);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(crate::server::serve(state, addr, |local| {
        super::outln!("OnLabel is serving on http://{local}/ (API under /api/v1, OpenAPI at /api/v1/openapi.json)");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }))?;
    Ok(super::EXIT_OK)
}
