//! [`Registry`]: the versioned prompt registry — prompt templates, the
//! guard's rule files and its lexicons as artefacts `name@N`, their MLR
//! e-signatures and the eval runs that justify an approval.
//!
//! Invariants
//!
//! - **A version is immutable.** `name@N` keeps the exact content proposed,
//!   its SHA-256, parameters, author and time; a trigger refuses changes to
//!   them. Only its state moves: `draft → in_review → approved → retired`, or
//!   `in_review → rejected` ([`State`]). Versions are never deleted.
//! - **At most one live version per name**: approving (or rolling back to) a
//!   version retires the live one in the same transaction; a partial unique
//!   index refuses two `approved` rows.
//! - **Approval is an e-signature** (21 CFR 11.50, 11.70, 11.200): the
//!   signer's id and full name, role, UTC time, meaning (`approved for use` /
//!   `rejected`), reason, and the version's hash, sealed by a `binding` hash
//!   over all of them ([`Signature::is_bound_to`]) so it cannot be moved to
//!   another version. The signer re-authenticates for every signature: the
//!   command line re-checks id and token, the server the password or a
//!   fresh single sign-on step-up ([`Reauth`], on the audit record).
//!   [`Signature::manifest`] is what a reader sees of it (11.50).
//! - **Who may sign**: only `mlr_reviewer`, never the version's author —
//!   neither to approve nor to reject ([`Error::SelfApproval`],
//!   [`Error::SelfRejection`]).
//! - **Confined files**: a version's file is a regular file under
//!   `prompts/`, `rules/` or `lexicon/` of the root, reached without a
//!   symlink and read with a size limit ([`source`]).
//! - **Evidence first**: approving needs, for each gate of the version's kind
//!   in the thresholds file ([`thresholds`]), a recorded eval run of that
//!   exact version on that suite (as it is now) meeting the minimums.
//! - **Checked at load**: [`Registry::live`] hashes the file on disk and
//!   refuses it unless it is the approved version, saying which approval is
//!   missing; [`live_prompt`] is that check on the template the copilot runs.
//! - **Audited**: every change appends an audit record in the same
//!   transaction ([`crate::audit::append_tx`]).

pub mod diff;
pub mod file;
mod live;
pub mod source;
pub mod thresholds;

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use file::PromptFile;
pub use live::{live_prompt, live_template};
pub use thresholds::{Gate, Thresholds};

use crate::store::{self, Store};
use crate::users::{Role, User};

/// What a registered artefact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A minijinja prompt template (`prompts/*.j2`).
    Prompt,
    /// A guard rule file (`rules/*.toml`).
    Rules,
    /// A guard lexicon (`lexicon/*.txt`).
    Lexicon,
}

impl Kind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Prompt => "prompt",
            Kind::Rules => "rules",
            Kind::Lexicon => "lexicon",
        }
    }

    /// The kind a file's extension implies (`.j2`, `.toml`, `.txt`).
    pub fn from_path(p: &Path) -> Option<Kind> {
        match p.extension().and_then(|e| e.to_str()) {
            Some("j2" | "jinja" | "jinja2") => Some(Kind::Prompt),
            Some("toml") => Some(Kind::Rules),
            Some("txt") => Some(Kind::Lexicon),
            _ => None,
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Kind, String> {
        match s {
            "prompt" => Ok(Kind::Prompt),
            "rules" => Ok(Kind::Rules),
            "lexicon" => Ok(Kind::Lexicon),
            _ => Err(format!("{s:?} is not a kind")),
        }
    }
}

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Proposed, being edited; not yet submitted.
    Draft,
    /// Submitted for MLR review.
    InReview,
    /// Signed as approved for use: the live version.
    Approved,
    /// Was live; replaced or withdrawn.
    Retired,
    /// Signed as rejected.
    Rejected,
}

impl State {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::InReview => "in_review",
            State::Approved => "approved",
            State::Retired => "retired",
            State::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<State, String> {
        [State::Draft, State::InReview, State::Approved, State::Retired, State::Rejected]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a state"))
    }
}

/// What can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Signing in or a role check failed.
    #[error(transparent)]
    Users(#[from] crate::users::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No such version (or name).
    #[error("no prompt version {id}")]
    NotFound {
        /// `name@N` or `name`.
        id: String,
    },
    /// The version is not in a state that allows this step.
    #[error("{id} is {state}; {action} needs {needs}")]
    BadState {
        /// The version.
        id: String,
        /// Its state.
        state: State,
        /// The step asked for.
        action: &'static str,
        /// The state(s) it needs.
        needs: &'static str,
    },
    /// The reviewer authored the version (11.10(g) separation of duties).
    #[error("permission denied: {user} authored {id} and cannot approve it; another mlr_reviewer must sign")]
    SelfApproval {
        /// The version.
        id: String,
        /// The author trying to approve.
        user: String,
    },
    /// The reviewer authored the version and tried to reject it: a rejection
    /// is an MLR signature too, so the same separation of duties applies.
    #[error("permission denied: {user} authored {id} and cannot reject it; another mlr_reviewer must sign")]
    SelfRejection {
        /// The version.
        id: String,
        /// The author trying to reject.
        user: String,
    },
    /// A template path that leads outside the artefact folders of the root,
    /// through a symlink, or to something that is not a small text file.
    #[error("{path}: {reason}")]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No recorded eval run meets the thresholds for this exact version.
    #[error("{id} cannot be approved: {missing}")]
    NoEvalEvidence {
        /// The version.
        id: String,
        /// What is missing, per gate.
        missing: String,
    },
    /// No approved version exists for the name: the copilot must not run it.
    #[error("{name} has no approved version{}; {hint}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    NotApproved {
        /// The artefact name.
        name: String,
        /// Its file, if registered.
        path: Option<PathBuf>,
        /// Which approval is missing and how to get it.
        hint: String,
    },
    /// The file on disk is not the approved content.
    #[error("{path} (sha256 {disk_sha256}) is not the approved {approved} (sha256 {approved_sha256}): {hint}")]
    Altered {
        /// The file.
        path: PathBuf,
        /// The live version, `name@N`.
        approved: String,
        /// Its hash.
        approved_sha256: String,
        /// The file's hash.
        disk_sha256: String,
        /// Which approval is missing.
        hint: String,
    },
    /// The thresholds file is malformed.
    #[error("{path}: {reason}")]
    BadThresholds {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A field is empty or malformed.
    #[error("{field}: {reason}")]
    BadInput {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(e) => e.code(),
            Error::Users(e) => e.code(),
            Error::Io { .. } => "io_error",
            Error::NotFound { .. } => "prompt_not_found",
            Error::BadState { .. } => "invalid_state",
            Error::SelfApproval { .. } => "self_approval",
            Error::SelfRejection { .. } => "self_rejection",
            Error::BadPath { .. } => "bad_path",
            Error::NoEvalEvidence { .. } => "no_eval_evidence",
            Error::NotApproved { .. } => "not_approved",
            Error::Altered { .. } => "template_altered",
            Error::BadThresholds { .. } => "bad_thresholds",
            Error::BadInput { .. } => "bad_input",
        }
    }

    /// Permission denied (exit 3): bad credential, wrong role, self-approval.
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::SelfApproval { .. } | Error::SelfRejection { .. }) || matches!(self, Error::Users(e) if e.is_denied())
    }

    /// A check failed (exit 1): missing evidence, unapproved or altered artefact.
    pub fn is_check_failed(&self) -> bool {
        matches!(self, Error::NoEvalEvidence { .. } | Error::NotApproved { .. } | Error::Altered { .. })
    }
}

/// Result with the registry [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `name@N`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionId {
    /// The artefact name.
    pub name: String,
    /// The version number.
    pub version: i64,
}

impl std::str::FromStr for VersionId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<VersionId, String> {
        let (name, v) = s.rsplit_once('@').ok_or_else(|| format!("{s:?}: expected NAME@N, e.g. objection@2"))?;
        let version = v.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| format!("{s:?}: N must be 1, 2, 3, …"))?;
        check_name(name).map_err(|e| e.to_string())?;
        Ok(VersionId { name: name.to_string(), version })
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// One version as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// The artefact name.
    pub name: String,
    /// N.
    pub version: i64,
    /// Prompt, rules or lexicon.
    pub kind: Kind,
    /// The file it lives in (checked at load).
    pub source_path: String,
    /// The exact content.
    #[serde(skip)]
    pub content: String,
    /// SHA-256 of the content.
    pub sha256: String,
    /// Parameters (temperature, max_tokens, model, …).
    pub params: serde_json::Value,
    /// Who proposed it.
    pub author: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Its state.
    pub state: State,
    /// When the state last changed.
    pub state_changed_at: DateTime<Utc>,
}

impl Version {
    /// `name@N`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// An e-signature on a version. Serialised with every stored field and
/// its [`Manifestation`] (`manifestation`, derived, not stored), so each
/// JSON that carries a signature — `GET /api/v1/prompts/{id}`, the
/// approve/reject answer, `prompts show --json` — shows it as 11.50 asks.
#[derive(Debug, Clone)]
pub struct Signature {
    /// Row id.
    pub id: i64,
    /// The signed version's name.
    pub name: String,
    /// The signed version's number.
    pub version: i64,
    /// The signed version's hash at signing.
    pub sha256: String,
    /// The signer's user id.
    pub signer_id: String,
    /// The signer's full name (11.50(a)(1)).
    pub signer_name: String,
    /// The signer's role.
    pub signer_role: String,
    /// `approved for use` or `rejected` (11.50(a)(3)).
    pub meaning: String,
    /// Why.
    pub reason: String,
    /// When, UTC (11.50(a)(2)).
    pub signed_at: String,
    /// The eval run the approval rests on.
    pub eval_run_id: Option<i64>,
    /// SHA-256 over every field above (see [`Signature::binding_of`]).
    pub binding: String,
}

/// The meaning of an approval.
pub const APPROVED_FOR_USE: &str = "approved for use";
/// The meaning of a rejection.
pub const REJECTED: &str = "rejected";

/// The 21 CFR 11.50 manifestation of a signature: what anyone reading the
/// signed record sees of it — the signer's printed name, the date and time
/// of signing (UTC; the web UI adds the reader's local time), and the
/// meaning in words with the signer's reason — next to the SHA-256 of the
/// signed record it is bound to (11.70). Derived from the stored
/// signature, so it can never say something the bound record does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifestation {
    /// The signer's full name as printed (11.50(a)(1)).
    pub printed_name: String,
    /// The signer's user id (a name need not be unique).
    pub signer_id: String,
    /// When it was signed, UTC, RFC 3339 (11.50(a)(2)).
    pub signed_at_utc: String,
    /// The meaning in words: `Approved` or `Rejected` (11.50(a)(3)).
    pub meaning: String,
    /// The meaning as stored and bound (`approved for use`, `rejected`).
    pub meaning_stored: String,
    /// Why, in the signer's words.
    pub reason: String,
    /// The signed record: `name@N`.
    pub record: String,
    /// The SHA-256 of the signed record's content (11.70).
    pub record_sha256: String,
    /// All of the above in one line, as an export or a page prints it.
    pub text: String,
}

/// The meaning of a stored signature meaning in words (`Approved`,
/// `Rejected`); an unknown one is shown as stored.
pub fn meaning_words(stored: &str) -> String {
    match stored {
        APPROVED_FOR_USE => "Approved".into(),
        REJECTED => "Rejected".into(),
        other => other.into(),
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("Signature", 13)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("sha256", &self.sha256)?;
        st.serialize_field("signer_id", &self.signer_id)?;
        st.serialize_field("signer_name", &self.signer_name)?;
        st.serialize_field("signer_role", &self.signer_role)?;
        st.serialize_field("meaning", &self.meaning)?;
        st.serialize_field("reason", &self.reason)?;
        st.serialize_field("signed_at", &self.signed_at)?;
        st.serialize_field("eval_run_id", &self.eval_run_id)?;
        st.serialize_field("binding", &self.binding)?;
        st.serialize_field("manifestation", &self.manifest())?;
        st.end()
    }
}

impl Signature {
    /// The binding hash: SHA-256 over the signed version id, its content hash
    /// and every signature field, as a JSON array (11.70: the signature is
    /// linked to its record and cannot be copied to another).
    pub fn binding_of(&self) -> String {
        let v = serde_json::json!([
            1,
            self.name,
            self.version,
            self.sha256,
            self.signer_id,
            self.signer_name,
            self.signer_role,
            self.meaning,
            self.reason,
            self.signed_at,
            self.eval_run_id
        ]);
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    }

    /// True when the signature is intact and belongs to `v` (same name,
    /// number and content hash).
    pub fn is_bound_to(&self, v: &Version) -> bool {
        self.binding == self.binding_of() && self.name == v.name && self.version == v.version && self.sha256 == v.sha256
    }

    /// `Ada Reviewer (ada) — approved for use — 2026-12-01T09:00:00Z — "reason"`.
    pub fn manifestation(&self) -> String {
        format!("{} ({}) — {} — {} — \"{}\"", self.signer_name, self.signer_id, self.meaning, self.signed_at, self.reason)
    }

    /// The 11.50 manifestation ([`Manifestation`]).
    pub fn manifest(&self) -> Manifestation {
        let meaning = meaning_words(&self.meaning);
        let when = manifest_time(&self.signed_at);
        let text = format!(
            "{meaning} by {} ({}) on {when} — meaning: {meaning} ({}) — reason: \"{}\" — {}@{} sha256 {}",
            self.signer_name, self.signer_id, self.meaning, self.reason, self.name, self.version, self.sha256
        );
        Manifestation {
            printed_name: self.signer_name.clone(),
            signer_id: self.signer_id.clone(),
            signed_at_utc: self.signed_at.clone(),
            meaning,
            meaning_stored: self.meaning.clone(),
            reason: self.reason.clone(),
            record: format!("{}@{}", self.name, self.version),
            record_sha256: self.sha256.clone(),
            text,
        }
    }
}

/// A recorded eval run of one version.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRun {
    /// Row id (what a signature points at).
    pub id: i64,
    /// The version's name.
    pub name: String,
    /// Its number.
    pub version: i64,
    /// Its hash when evaluated.
    pub sha256: String,
    /// The suite file.
    pub suite_path: String,
    /// The suite's SHA-256.
    pub suite_sha256: String,
    /// The model file (none: extractive).
    pub model: Option<String>,
    /// Its SHA-256.
    pub model_sha256: Option<String>,
    /// Every artefact version in play (`name@N` or `file sha256:…`).
    pub versions: serde_json::Value,
    /// The metrics (`eval --json` without outcomes).
    pub metrics: serde_json::Value,
    /// The gate it was judged against.
    pub thresholds: serde_json::Value,
    /// The thresholds file's SHA-256.
    pub thresholds_sha256: String,
    /// Whether it met the gate when recorded.
    pub passed: bool,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: String,
}

/// What a caller records after running an eval on a version.
#[derive(Debug, Clone)]
pub struct NewEvalRun {
    /// The suite file as given.
    pub suite_path: PathBuf,
    /// Its SHA-256.
    pub suite_sha256: String,
    /// The model file.
    pub model: Option<String>,
    /// Its SHA-256.
    pub model_sha256: Option<String>,
    /// Every artefact in play.
    pub versions: serde_json::Value,
    /// The metrics JSON.
    pub metrics: serde_json::Value,
}

/// The live, approved version of an artefact whose file on disk matches it:
/// what the copilot may load.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovedTemplate {
    /// The version.
    pub version: Version,
    /// The content (identical to the file on disk at the time of the check).
    pub content: String,
    /// The approval that makes it live.
    pub approval: Signature,
}

impl ApprovedTemplate {
    /// `name@N`.
    pub fn id(&self) -> String {
        self.version.id()
    }
}

/// SHA-256 of text, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The registry over a [`Store`], resolving relative source paths against `root`.
#[derive(Debug)]
pub struct Registry<'a> {
    store: &'a Store,
    root: PathBuf,
    /// How the signer of the next e-signature proved who they are (on the
    /// signature's audit record); the caller checked it before signing.
    reauth: Reauth,
}

/// How a signer re-authenticated for an e-signature (21 CFR 11.200(a)):
/// the caller checks the credential, the registry records which one it was
/// on the signature's audit record (`detail.reauthenticated_with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauth {
    /// The signer's own bearer token, re-entered (the command line:
    /// `ONLABEL_TOKEN` with `--as`).
    Token,
    /// The signer's password, re-entered (`POST …/approve` with `password`).
    Password,
    /// A fresh single sign-on step-up (`prompt=login`, `max_age=0`) of the
    /// signer's own OIDC session, consumed by this signature.
    OidcStepUp,
}

impl Reauth {
    /// `token`, `password` or `oidc_step_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reauth::Token => "token",
            Reauth::Password => "password",
            Reauth::OidcStepUp => "oidc_step_up",
        }
    }
}

impl<'a> Registry<'a> {
    /// A registry in `store`; `root` is the repository root (source paths are relative to it).
    pub fn new(store: &'a Store, root: &Path) -> Registry<'a> {
        Registry { store, root: root.to_owned(), reauth: Reauth::Token }
    }

    /// The same registry, recording that the signer of its e-signatures
    /// re-authenticated with `reauth` (default: [`Reauth::Token`], the
    /// command line's).
    pub fn reauthenticated_with(mut self, reauth: Reauth) -> Registry<'a> {
        self.reauth = reauth;
        self
    }

    /// Stores content sent for a proposal (the HTTP `content` field) as
    /// `prompts/proposed/NAME-SHA12.EXT` under the root and returns that
    /// path relative to the root, for [`Registry::propose`]. Content-addressed:
    /// the same content twice is one file.
    pub fn store_proposal(&self, name: &str, kind: Kind, content: &str) -> Result<PathBuf> {
        check_name(name)?;
        if content.trim().is_empty() {
            return Err(Error::BadInput { field: "content", reason: "content is empty".into() });
        }
        let ext = match kind {
            Kind::Prompt => "j2",
            Kind::Rules => "toml",
            Kind::Lexicon => "txt",
        };
        let sha = sha256_hex(content.as_bytes());
        let rel = PathBuf::from("prompts/proposed").join(format!("{name}-{}.{ext}", &sha[..12]));
        source::write_confined(&self.root, &rel, content)?;
        Ok(rel)
    }

    /// A stored source path as a path under the root's artefact folders.
    fn confined_rel(&self, stored: &str) -> Result<PathBuf> {
        let p = Path::new(stored);
        let rel = if p.is_absolute() {
            let root = self.root.canonicalize().map_err(|source| Error::Io { path: self.root.clone(), source })?;
            p.strip_prefix(&root).or_else(|_| p.strip_prefix(&self.root)).map(Path::to_path_buf).map_err(|_| Error::BadPath {
                path: p.to_owned(),
                reason: "is outside the root; restore it by hand and propose it again".into(),
            })?
        } else {
            p.to_owned()
        };
        let first = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        if !source::ARTEFACT_DIRS.contains(&first) || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(Error::BadPath { path: p.to_owned(), reason: "is not under prompts/, rules/ or lexicon/ of the root".into() });
        }
        Ok(rel)
    }

    /// The file a version lives in, resolved against the root.
    pub fn file_of(&self, v: &Version) -> PathBuf {
        self.resolve(&v.source_path)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.root.join(p)
        }
    }

    /// Registers the content of `template` as a new draft `name@N` (N = last
    /// + 1). `template` must be a regular file under `prompts/`, `rules/` or
    /// `lexicon/` of the root, reached without a symlink, at most
    /// [`source::MAX_ARTEFACT_BYTES`] ([`source::read_confined`]); it is
    /// stored by its path relative to the root.
    pub fn propose(
        &self,
        name: &str,
        template: &Path,
        kind: Option<Kind>,
        params: serde_json::Value,
        author: &User,
    ) -> Result<Version> {
        check_name(name)?;
        author.require(&[Role::MlrReviewer, Role::Admin], "prompts propose")?;
        // Where the file is decides first: nothing outside the artefact folders is even looked at.
        let (content, full, rel) = source::read_confined(&self.root, template)?;
        let kind = kind.or_else(|| Kind::from_path(template)).ok_or_else(|| Error::BadInput {
            field: "--kind",
            reason: format!("cannot tell the kind of {} from its extension; pass --kind", template.display()),
        })?;
        if content.trim().is_empty() {
            return Err(Error::BadInput { field: "--template", reason: format!("{} is empty", full.display()) });
        }
        let sha = sha256_hex(content.as_bytes());
        let source = rel.to_string_lossy().to_string();
        let now = Utc::now();
        let version = self.store.transaction(|tx| {
            let last: Option<(i64, String)> = tx
                .query_opt("SELECT version, kind FROM prompt_versions WHERE name = ?1 ORDER BY version DESC LIMIT 1", crate::vals![name])?
                .map(|r| Ok::<_, store::Error>((r.get(0)?, r.get(1)?)))
                .transpose()?;
            if let Some((_, k)) = &last {
                if k != kind.as_str() {
                    return Err(Error::BadInput { field: "--kind", reason: format!("{name} is a {k}, not a {}", kind.as_str()) });
                }
            }
            let same: Option<i64> = tx.opt("SELECT version FROM prompt_versions WHERE name = ?1 AND sha256 = ?2", crate::vals![name, &sha])?;
            if let Some(v) = same {
                return Err(Error::BadInput {
                    field: "--template",
                    reason: format!("{} is identical to {name}@{v}; nothing to propose", template.display()),
                });
            }
            let n = last.map_or(1, |l| l.0 + 1);
            tx.execute(
                "INSERT INTO prompt_versions (name, version, kind, source_path, content, sha256, params_json, author,
                     created_at, state, state_changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'draft', ?9)",
                crate::vals![name, n, kind.as_str(), &source, &content, &sha, params.to_string(), &author.id, stamp(now)],
            )?;
            let mut rec = crate::audit::Record::new(&author.id, author.role.as_str(), "prompt_proposed");
            rec.prompt_version = Some(format!("{name}@{n}"));
            rec.prompt_sha256 = Some(sha.clone());
            rec.detail = serde_json::json!({"kind": kind.as_str(), "source_path": source, "params": params});
            crate::audit::append_tx(tx, &rec, now)?;
            Ok(n)
        })?;
        self.get(&VersionId { name: name.into(), version })
    }

    /// `draft → in_review`, by the author, an mlr_reviewer or an admin.
    pub fn submit(&self, id: &VersionId, by: &User) -> Result<Version> {
        let v = self.get(id)?;
        if v.author != by.id {
            by.require(&[Role::MlrReviewer, Role::Admin], "prompts submit")?;
        }
        self.transition(&v, &[State::Draft], "submit", "draft", State::InReview, by, "prompt_submitted", serde_json::json!({}))
    }

    /// Signs `id` as approved for use and makes it live (the previous live
    /// version is retired). `signer` must have just signed in with id and token.
    pub fn approve(&self, id: &VersionId, reason: &str, signer: &User, thresholds: &Thresholds) -> Result<(Version, Signature)> {
        let v = self.get(id)?;
        signer.require(&[Role::MlrReviewer], "prompts approve")?;
        if v.author == signer.id {
            return Err(Error::SelfApproval { id: v.id(), user: signer.id.clone() });
        }
        check_reason(reason)?;
        if v.state != State::InReview {
            return Err(Error::BadState { id: v.id(), state: v.state, action: "approve", needs: "in_review (submit it first)" });
        }
        let run = self.evidence(&v, thresholds)?;
        self.sign(&v, signer, APPROVED_FOR_USE, reason, Some(run), &[State::InReview], "prompt_approved")
    }

    /// Signs `id` as rejected (`in_review → rejected`), by an mlr_reviewer
    /// who did not author it.
    pub fn reject(&self, id: &VersionId, reason: &str, signer: &User) -> Result<(Version, Signature)> {
        let v = self.get(id)?;
        signer.require(&[Role::MlrReviewer], "prompts reject")?;
        if v.author == signer.id {
            return Err(Error::SelfRejection { id: v.id(), user: signer.id.clone() });
        }
        check_reason(reason)?;
        if v.state != State::InReview {
            return Err(Error::BadState { id: v.id(), state: v.state, action: "reject", needs: "in_review" });
        }
        self.sign(&v, signer, REJECTED, reason, None, &[State::InReview], "prompt_rejected")
    }

    /// Takes the live version out of use (`approved → retired`); afterwards
    /// nothing of that name may run until another version is approved.
    pub fn retire(&self, id: &VersionId, reason: &str, by: &User) -> Result<Version> {
        by.require(&[Role::MlrReviewer, Role::Admin], "prompts retire")?;
        check_reason(reason)?;
        let v = self.get(id)?;
        self.transition(&v, &[State::Approved], "retire", "approved", State::Retired, by, "prompt_retired", serde_json::json!({"reason": reason}))
    }

    /// Makes an earlier, once-approved version live again (`retired →
    /// approved`), retiring the current one: a new e-signature by an
    /// mlr_reviewer who did not author it, resting on that version's own
    /// recorded eval evidence. Writes its content back to its source file.
    pub fn rollback(&self, id: &VersionId, reason: &str, signer: &User, thresholds: &Thresholds) -> Result<(Version, Signature)> {
        let v = self.get(id)?;
        signer.require(&[Role::MlrReviewer], "prompts rollback")?;
        if v.author == signer.id {
            return Err(Error::SelfApproval { id: v.id(), user: signer.id.clone() });
        }
        check_reason(reason)?;
        if v.state != State::Retired {
            return Err(Error::BadState { id: v.id(), state: v.state, action: "rollback", needs: "retired" });
        }
        let was_approved = self.signatures(id)?.iter().any(|s| s.meaning == APPROVED_FOR_USE && s.is_bound_to(&v));
        if !was_approved {
            return Err(Error::BadState { id: v.id(), state: v.state, action: "rollback", needs: "a version that was once approved" });
        }
        let run = self.evidence(&v, thresholds)?;
        // Refused before signing when the stored path no longer leads to a
        // confined place (a version registered before paths were confined).
        let rel = self.confined_rel(&v.source_path)?;
        let out = self.sign(&v, signer, APPROVED_FOR_USE, reason, Some(run), &[State::Retired], "prompt_rolled_back")?;
        source::write_confined(&self.root, &rel, &v.content)?;
        Ok(out)
    }

    /// Records an eval run of `id` (its stored content was evaluated) and
    /// judges it against the gate for its suite. Compliance or admin, or an
    /// mlr_reviewer (whose evidence request the server ran: the metrics come
    /// from the run, never from the reviewer; the CLI's `record-eval` stays
    /// compliance's).
    pub fn record_eval(&self, id: &VersionId, run: &NewEvalRun, by: &User, thresholds: &Thresholds) -> Result<EvalRun> {
        by.require(&[Role::Compliance, Role::Admin, Role::MlrReviewer], "prompts record-eval")?;
        let v = self.get(id)?;
        let gate = thresholds.gates(v.kind).find(|g| self.suite_sha(g).ok().as_deref() == Some(run.suite_sha256.as_str()));
        let (gate_json, passed) = match gate {
            Some(g) => (serde_json::to_value(g).unwrap_or_default(), g.shortfalls(&run.metrics).is_empty()),
            None => (serde_json::json!(null), false),
        };
        let now = Utc::now();
        let rid = self.store.transaction(|tx| {
            let rid: i64 = tx.one(
                "INSERT INTO eval_runs (name, version, sha256, suite_path, suite_sha256, model, model_sha256, versions_json,
                     metrics_json, thresholds_json, thresholds_sha256, passed, recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 RETURNING id",
                crate::vals![
                    &v.name,
                    v.version,
                    &v.sha256,
                    run.suite_path.to_string_lossy().into_owned(),
                    &run.suite_sha256,
                    run.model.clone(),
                    run.model_sha256.clone(),
                    run.versions.to_string(),
                    run.metrics.to_string(),
                    gate_json.to_string(),
                    &thresholds.sha256,
                    passed,
                    &by.id,
                    stamp(now)
                ],
            )?;
            let mut rec = crate::audit::Record::new(&by.id, by.role.as_str(), "eval_recorded");
            rec.prompt_version = Some(v.id());
            rec.prompt_sha256 = Some(v.sha256.clone());
            rec.model = run.model.clone();
            rec.model_sha256 = run.model_sha256.clone();
            rec.detail = serde_json::json!({
                "eval_run": rid, "suite": run.suite_path, "suite_sha256": run.suite_sha256, "passed": passed,
                "metrics": run.metrics, "versions": run.versions,
            });
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(rid)
        })?;
        self.eval_runs(id)?.into_iter().find(|r| r.id == rid).ok_or_else(|| Error::NotFound { id: format!("eval run {rid}") })
    }

    /// The eval run an approval of `v` would rest on, or why there is none:
    /// one passing run per gate of its kind, on the suite as it is now.
    pub fn evidence(&self, v: &Version, thresholds: &Thresholds) -> Result<i64> {
        let runs = self.eval_runs(&VersionId { name: v.name.clone(), version: v.version })?;
        let mut missing = Vec::new();
        let mut last = None;
        let gates: Vec<&Gate> = thresholds.gates(v.kind).collect();
        if gates.is_empty() {
            missing.push(format!("{} has no gate for kind {}", thresholds.path.display(), v.kind.as_str()));
        }
        for g in gates {
            let sha = self.suite_sha(g)?;
            let on_suite: Vec<&EvalRun> = runs.iter().filter(|r| r.sha256 == v.sha256 && r.suite_sha256 == sha).collect();
            match on_suite.iter().rev().find(|r| g.shortfalls(&r.metrics).is_empty()) {
                Some(r) => last = Some(last.map_or(r.id, |l: i64| l.max(r.id))),
                None => match on_suite.last() {
                    Some(r) => missing.push(format!(
                        "eval run {} on {} is below the thresholds in {} ({})",
                        r.id,
                        g.suite,
                        thresholds.path.display(),
                        g.shortfalls(&r.metrics).join(", ")
                    )),
                    None => missing.push(format!(
                        "no recorded eval run of {} on {} (request evidence on the version's review page, POST /api/v1/prompts/{}/evidence, or have compliance run `onlabel prompts record-eval {} --suite {} …`)",
                        v.id(),
                        g.suite,
                        v.id(),
                        v.id(),
                        g.suite
                    )),
                },
            }
        }
        match (missing.is_empty(), last) {
            (true, Some(id)) => Ok(id),
            _ => Err(Error::NoEvalEvidence { id: v.id(), missing: missing.join("; ") }),
        }
    }

    fn suite_sha(&self, g: &Gate) -> Result<String> {
        let p = self.resolve(&g.suite);
        let bytes = std::fs::read(&p).map_err(|source| Error::Io { path: p, source })?;
        Ok(sha256_hex(&bytes))
    }

    /// The live version of `name`, checked against its file on disk: what the
    /// copilot may load. Errors say which approval is missing.
    pub fn live(&self, name: &str) -> Result<ApprovedTemplate> {
        let versions = self.versions(Some(name))?;
        let Some(latest) = versions.last() else {
            return Err(Error::NotApproved {
                name: name.into(),
                path: None,
                hint: format!("it is not registered: `onlabel prompts propose {name} --template FILE --as USER`, then submit, eval and approve"),
            });
        };
        let path = self.resolve(&latest.source_path);
        let Some(live) = versions.iter().find(|v| v.state == State::Approved) else {
            let pending = versions.iter().rev().find(|v| matches!(v.state, State::Draft | State::InReview));
            let hint = match pending {
                Some(p) if p.state == State::InReview => format!("{} is in review and needs an mlr_reviewer's approval", p.id()),
                Some(p) => format!("{} is a draft: submit it for MLR review and approve it", p.id()),
                None => format!("every version is retired or rejected; propose a new one or roll back to a retired {name}@N"),
            };
            return Err(Error::NotApproved { name: name.into(), path: Some(path), hint });
        };
        let path = self.resolve(&live.source_path);
        let disk = std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let disk_sha = sha256_hex(&disk);
        if disk_sha != live.sha256 {
            let hint = match versions.iter().find(|v| v.sha256 == disk_sha) {
                Some(o) => format!("it is {} ({}), which is not approved; that version needs an MLR approval", o.id(), o.state),
                None => format!(
                    "it matches no registered version: propose it for MLR approval, or restore {} (onlabel prompts show {} --content)",
                    live.id(),
                    live.id()
                ),
            };
            return Err(Error::Altered {
                path,
                approved: live.id(),
                approved_sha256: live.sha256.clone(),
                disk_sha256: disk_sha,
                hint,
            });
        }
        let id = VersionId { name: live.name.clone(), version: live.version };
        let approval = self
            .signatures(&id)?
            .into_iter()
            .rev()
            .find(|s| s.meaning == APPROVED_FOR_USE && s.is_bound_to(live))
            .ok_or_else(|| Error::NotApproved {
                name: name.into(),
                path: Some(path.clone()),
                hint: format!("{} is marked approved but carries no valid approval signature (the store was altered)", live.id()),
            })?;
        Ok(ApprovedTemplate { content: live.content.clone(), version: live.clone(), approval })
    }

    /// The live (approved) version of every name of `kind`, by name: one
    /// small query, cheap enough for a server to ask before each question
    /// whether another replica approved a version since.
    pub fn live_ids(&self, kind: Kind) -> Result<Vec<VersionId>> {
        Ok(self.store.read(|c| {
            c.query("SELECT name, version FROM prompt_versions WHERE state = 'approved' AND kind = ?1 ORDER BY name", crate::vals![kind.as_str()])?
                .iter()
                .map(|r| Ok(VersionId { name: r.get(0)?, version: r.get(1)? }))
                .collect::<store::Result<Vec<_>>>()
        })?)
    }

    /// One version.
    pub fn get(&self, id: &VersionId) -> Result<Version> {
        self.store
            .read(|c| {
                c.query_opt(&format!("SELECT {COLUMNS} FROM prompt_versions WHERE name = ?1 AND version = ?2"), crate::vals![&id.name, id.version])?
                    .map(|r| version(&r))
                    .transpose()
            })?
            .ok_or_else(|| Error::NotFound { id: id.to_string() })
    }

    /// Every version (of `name`, or of all names), by name then number.
    pub fn versions(&self, name: Option<&str>) -> Result<Vec<Version>> {
        Ok(self.store.read(|c| {
            c.query(&format!("SELECT {COLUMNS} FROM prompt_versions WHERE ?1 IS NULL OR name = ?1 ORDER BY name, version"), crate::vals![name])?
                .iter()
                .map(version)
                .collect::<store::Result<Vec<_>>>()
        })?)
    }

    /// The signatures on a version, oldest first.
    pub fn signatures(&self, id: &VersionId) -> Result<Vec<Signature>> {
        Ok(self.store.read(|c| {
            let rows = c.query(
                "SELECT id, name, version, sha256, signer_id, signer_name, signer_role, meaning, reason, signed_at,
                        eval_run_id, binding
                 FROM prompt_signatures WHERE name = ?1 AND version = ?2 ORDER BY id",
                crate::vals![&id.name, id.version],
            )?;
            rows.iter().map(|r| {
                Ok(Signature {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get(2)?,
                    sha256: r.get(3)?,
                    signer_id: r.get(4)?,
                    signer_name: r.get(5)?,
                    signer_role: r.get(6)?,
                    meaning: r.get(7)?,
                    reason: r.get(8)?,
                    signed_at: r.get(9)?,
                    eval_run_id: r.get(10)?,
                    binding: r.get(11)?,
                })
            })
            .collect::<store::Result<Vec<_>>>()
        })?)
    }

    /// The eval runs of a version, oldest first.
    pub fn eval_runs(&self, id: &VersionId) -> Result<Vec<EvalRun>> {
        Ok(self.store.read(|c| {
            let rows = c.query(
                "SELECT id, name, version, sha256, suite_path, suite_sha256, model, model_sha256, versions_json,
                        metrics_json, thresholds_json, thresholds_sha256, passed, recorded_by, recorded_at
                 FROM eval_runs WHERE name = ?1 AND version = ?2 ORDER BY id",
                crate::vals![&id.name, id.version],
            )?;
            rows.iter().map(|r| {
                let j = |i: usize| -> store::Result<serde_json::Value> {
                    let s: String = r.get(i)?;
                    Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
                };
                Ok(EvalRun {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get(2)?,
                    sha256: r.get(3)?,
                    suite_path: r.get(4)?,
                    suite_sha256: r.get(5)?,
                    model: r.get(6)?,
                    model_sha256: r.get(7)?,
                    versions: j(8)?,
                    metrics: j(9)?,
                    thresholds: j(10)?,
                    thresholds_sha256: r.get(11)?,
                    passed: r.get::<i64>(12)? == 1,
                    recorded_by: r.get(13)?,
                    recorded_at: r.get(14)?,
                })
            })
            .collect::<store::Result<Vec<_>>>()
        })?)
    }

    #[allow(clippy::too_many_arguments)]
    fn transition(
        &self,
        v: &Version,
        from: &[State],
        action: &'static str,
        needs: &'static str,
        to: State,
        by: &User,
        audit_action: &str,
        detail: serde_json::Value,
    ) -> Result<Version> {
        if !from.contains(&v.state) {
            return Err(Error::BadState { id: v.id(), state: v.state, action, needs });
        }
        let now = Utc::now();
        self.store.transaction(|tx| {
            set_state(tx, v, from, to, now)?;
            let mut rec = crate::audit::Record::new(&by.id, by.role.as_str(), audit_action);
            rec.prompt_version = Some(v.id());
            rec.prompt_sha256 = Some(v.sha256.clone());
            rec.detail = serde_json::json!({"from": v.state.as_str(), "to": to.as_str(), "detail": detail});
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        self.get(&VersionId { name: v.name.clone(), version: v.version })
    }

    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        v: &Version,
        signer: &User,
        meaning: &str,
        reason: &str,
        eval_run_id: Option<i64>,
        from: &[State],
        audit_action: &str,
    ) -> Result<(Version, Signature)> {
        let now = Utc::now();
        let to = if meaning == APPROVED_FOR_USE { State::Approved } else { State::Rejected };
        let mut sig = Signature {
            id: 0,
            name: v.name.clone(),
            version: v.version,
            sha256: v.sha256.clone(),
            signer_id: signer.id.clone(),
            signer_name: signer.name.clone(),
            signer_role: signer.role.as_str().into(),
            meaning: meaning.into(),
            reason: reason.trim().into(),
            signed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            eval_run_id,
            binding: String::new(),
        };
        sig.binding = sig.binding_of();
        self.store.transaction(|tx| {
            let mut retired = None;
            if to == State::Approved {
                let live: Option<i64> = tx.opt("SELECT version FROM prompt_versions WHERE name = ?1 AND state = 'approved'", crate::vals![&v.name])?;
                if let Some(n) = live {
                    tx.execute(
                        "UPDATE prompt_versions SET state = 'retired', state_changed_at = ?3 WHERE name = ?1 AND version = ?2",
                        crate::vals![&v.name, n, stamp(now)],
                    )?;
                    retired = Some(format!("{}@{n}", v.name));
                }
            }
            set_state(tx, v, from, to, now)?;
            tx.execute(
                "INSERT INTO prompt_signatures (name, version, sha256, signer_id, signer_name, signer_role, meaning, reason,
                     signed_at, eval_run_id, binding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                crate::vals![
                    &sig.name,
                    sig.version,
                    &sig.sha256,
                    &sig.signer_id,
                    &sig.signer_name,
                    &sig.signer_role,
                    &sig.meaning,
                    &sig.reason,
                    &sig.signed_at,
                    sig.eval_run_id,
                    &sig.binding
                ],
            )?;
            let mut rec = crate::audit::Record::new(&signer.id, signer.role.as_str(), audit_action);
            rec.prompt_version = Some(v.id());
            rec.prompt_sha256 = Some(v.sha256.clone());
            rec.detail = serde_json::json!({
                "signature": {"signer_id": sig.signer_id, "signer_name": sig.signer_name, "meaning": sig.meaning,
                              "reason": sig.reason, "signed_at": sig.signed_at, "eval_run_id": sig.eval_run_id,
                              "binding": sig.binding},
                "manifestation": sig.manifest().text,
                "reauthenticated_with": self.reauth.as_str(),
                "retired": retired,
            });
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        let id = VersionId { name: v.name.clone(), version: v.version };
        let sig = self.signatures(&id)?.pop().ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        Ok((self.get(&id)?, sig))
    }
}

/// `2026-12-01T09:00:00Z` → `2026-12-01 09:00:00 UTC` (a stored time
/// that does not parse is printed as stored).
fn manifest_time(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(|_| stored.to_string(), |t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn set_state(tx: &mut dyn store::Sql, v: &Version, from: &[State], to: State, now: DateTime<Utc>) -> Result<()> {
    // Re-check inside the write transaction: another process may have moved it.
    let cur: String = tx.one("SELECT state FROM prompt_versions WHERE name = ?1 AND version = ?2", crate::vals![&v.name, v.version])?;
    let cur: State = cur.parse().map_err(|reason| Error::BadInput { field: "state", reason })?;
    if !from.contains(&cur) {
        return Err(Error::BadState { id: v.id(), state: cur, action: "change", needs: "its state as read a moment ago" });
    }
    tx.execute(
        "UPDATE prompt_versions SET state = ?3, state_changed_at = ?4 WHERE name = ?1 AND version = ?2",
        crate::vals![&v.name, v.version, to.as_str(), stamp(now)],
    )?;
    Ok(())
}

/// Refuses a registry name that is not ASCII letters, digits, `_`, `-` or `.` (64 at most).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput { field: "NAME", reason: format!("{name:?}: use 1-64 letters, digits, _ - .") })
    }
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::BadInput { field: "--reason", reason: "a signature needs a reason".into() });
    }
    Ok(())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const COLUMNS: &str =
    "name, version, kind, source_path, content, sha256, params_json, author, created_at, state, state_changed_at";

fn conv(i: usize, e: impl std::fmt::Display) -> store::Error {
    store::Error::Decode { column: i, reason: e.to_string() }
}

fn time(r: &store::Row, i: usize) -> store::Result<DateTime<Utc>> {
    let s: String = r.get(i)?;
    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(i, e))
}

fn version(r: &store::Row) -> store::Result<Version> {
    let kind: String = r.get(2)?;
    let state: String = r.get(9)?;
    let params: String = r.get(6)?;
    Ok(Version {
        name: r.get(0)?,
        version: r.get(1)?,
        kind: kind.parse().map_err(|e: String| conv(2, e))?,
        source_path: r.get(3)?,
        content: r.get(4)?,
        sha256: r.get(5)?,
        params: serde_json::from_str(&params).map_err(|e| conv(6, e))?,
        author: r.get(7)?,
        created_at: time(r, 8)?,
        state: state.parse().map_err(|e: String| conv(9, e))?,
        state_changed_at: time(r, 10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_parse_and_refuse_nonsense() {
        let v: VersionId = "guard-rules@12".parse().unwrap();
        assert_eq!((v.name.as_str(), v.version), ("guard-rules", 12));
        assert_eq!(v.to_string(), "guard-rules@12");
        for bad in ["objection", "objection@0", "objection@x", "@1", "a b@1"] {
            assert!(bad.parse::<VersionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signature_is_bound_to_one_version_and_every_field() {
        let now = Utc::now();
        let v = Version {
            name: "objection".into(),
            version: 2,
            kind: Kind::Prompt,
            source_path: "prompts/objection.j2".into(),
            content: "x".into(),
            sha256: sha256_hex(b"x"),
            params: serde_json::json!({}),
            author: "alice".into(),
            created_at: now,
            state: State::Approved,
            state_changed_at: now,
        };
        let mut s = Signature {
            id: 1,
            name: v.name.clone(),
            version: 2,
            sha256: v.sha256.clone(),
            signer_id: "bob".into(),
            signer_name: "Bob Reviewer".into(),
            signer_role: "mlr_reviewer".into(),
            meaning: APPROVED_FOR_USE.into(),
            reason: "ok".into(),
            signed_at: "2026-12-01T09:00:00Z".into(),
            eval_run_id: Some(3),
            binding: String::new(),
        };
        s.binding = s.binding_of();
        assert!(s.is_bound_to(&v));
        let other = Version { version: 3, sha256: sha256_hex(b"y"), ..v.clone() };
        assert!(!s.is_bound_to(&other), "copied to another version");
        let mut edited = s.clone();
        edited.reason = "changed".into();
        assert!(!edited.is_bound_to(&v), "reason edited after signing");
        let mut moved = s.clone();
        moved.version = 3;
        moved.sha256 = other.sha256.clone();
        assert!(!moved.is_bound_to(&other), "row rewritten to point at another version");
    }

    #[test]
    fn issue21_3_the_manifestation_prints_name_time_meaning_and_reason_bound_to_the_hash() {
        let s = Signature {
            id: 1,
            name: "objection".into(),
            version: 2,
            sha256: sha256_hex(b"x"),
            signer_id: "bob".into(),
            signer_name: "Bob Reviewer".into(),
            signer_role: "mlr_reviewer".into(),
            meaning: REJECTED.into(),
            reason: "Needs a citation".into(),
            signed_at: "2026-12-01T09:00:00Z".into(),
            eval_run_id: None,
            binding: String::new(),
        };
        let m = s.manifest();
        assert_eq!((m.printed_name.as_str(), m.signed_at_utc.as_str(), m.meaning.as_str(), m.reason.as_str()), ("Bob Reviewer", "2026-12-01T09:00:00Z", "Rejected", "Needs a citation"));
        assert_eq!((m.record.as_str(), m.record_sha256.as_str()), ("objection@2", s.sha256.as_str()));
        assert!(m.text.starts_with("Rejected by Bob Reviewer (bob) on 2026-12-01 09:00:00 UTC — meaning: Rejected (rejected) — reason: \"Needs a citation\""), "{}", m.text);
        assert!(m.text.ends_with(&s.sha256), "{}", m.text);
        assert_eq!(meaning_words(APPROVED_FOR_USE), "Approved");
        // Every JSON that carries a signature carries its manifestation, and the stored fields as before.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["manifestation"]["meaning"], "Rejected");
        assert_eq!((j["meaning"].as_str(), j["signer_name"].as_str(), j["binding"].as_str()), (Some("rejected"), Some("Bob Reviewer"), Some("")));
    }

    /// A registry in a scratch root with an admin, two reviewers and a rep,
    /// and `prompts/objection.j2` proposed by `alice` and submitted.
    fn scratch() -> (tempfile::TempDir, Store, Vec<User>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("prompts")).unwrap();
        std::fs::write(d.path().join("prompts/objection.j2"), "Answer from {{ passages }}").unwrap();
        let store = Store::open(&d.path().join("data")).unwrap();
        let users = crate::users::Users::new(&store);
        let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
        let mut out = vec![admin.clone()];
        for (id, role) in [("alice", Role::MlrReviewer), ("bob", Role::MlrReviewer), ("rex", Role::Rep)] {
            out.push(users.add(id, id, role, Some(&admin)).unwrap().0);
        }
        (d, store, out)
    }

    /// The whole registry lifecycle, on SQLite and on PostgreSQL: propose,
    /// submit, record an eval, approve (the live version), approve a second
    /// version (the first is retired), roll back; every step audited in one
    /// chain; a version moved meanwhile by another process is refused.
    #[test]
    fn issue22_2_the_registry_lifecycle_is_the_same_on_both_backends() {
        for t in crate::store::testing::each_backend("registry_lifecycle") {
            let who = t.name();
            let root = t.dir.path();
            std::fs::create_dir_all(root.join("prompts")).unwrap();
            std::fs::create_dir_all(root.join("evals")).unwrap();
            std::fs::write(root.join("prompts/objection.j2"), "Answer from {{ passages }}").unwrap();
            std::fs::write(root.join("evals/demo.jsonl"), "{}\n").unwrap();
            let store = &t.store;
            let users = crate::users::Users::new(store);
            let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap_or_else(|e| panic!("{who}: {e}"));
            let alice = users.add("alice", "Alice", Role::MlrReviewer, Some(&admin)).unwrap().0;
            let bob = users.add("bob", "Bob", Role::MlrReviewer, Some(&admin)).unwrap().0;
            let carol = users.add("carol", "Carol", Role::Compliance, Some(&admin)).unwrap().0;
            let thresholds = Thresholds {
                gate: vec![Gate { kind: Kind::Prompt, suite: "evals/demo.jsonl".into(), min: [("citation_precision".to_string(), 0.9)].into() }],
                path: root.join("evals/thresholds.toml"),
                sha256: "t".into(),
            };
            let reg = Registry::new(store, root);
            let run = |m: f64| NewEvalRun {
                suite_path: "evals/demo.jsonl".into(),
                suite_sha256: sha256_hex(b"{}\n"),
                model: None,
                model_sha256: None,
                versions: serde_json::json!({}),
                metrics: serde_json::json!({"citation_precision": m}),
            };
            let v1 = reg.propose("objection", Path::new("prompts/objection.j2"), None, serde_json::json!({"t": 0}), &alice).unwrap_or_else(|e| panic!("{who}: {e}"));
            let id1 = VersionId { name: v1.name.clone(), version: v1.version };
            assert_eq!((v1.version, v1.state), (1, State::Draft), "{who}");
            let e = reg.propose("objection", Path::new("prompts/objection.j2"), None, serde_json::json!({}), &alice).unwrap_err();
            assert_eq!(e.code(), "bad_input", "{who}: identical content is refused: {e}");
            reg.submit(&id1, &alice).unwrap();
            let e = reg.approve(&id1, "ok", &bob, &thresholds).unwrap_err();
            assert!(matches!(e, Error::NoEvalEvidence { .. }), "{who}: {e}");
            let low = reg.record_eval(&id1, &run(0.5), &carol, &thresholds).unwrap_or_else(|e| panic!("{who}: {e}"));
            assert!(!low.passed, "{who}");
            let good = reg.record_eval(&id1, &run(0.95), &carol, &thresholds).unwrap();
            assert!(good.passed && good.id > low.id, "{who}: {good:?}");
            let (v, sig) = reg.approve(&id1, "cited and safe", &bob, &thresholds).unwrap_or_else(|e| panic!("{who}: {e}"));
            assert_eq!((v.state, sig.eval_run_id), (State::Approved, Some(good.id)), "{who}");
            assert_eq!(reg.live("objection").unwrap().version.version, 1, "{who}");
            assert_eq!(reg.live_ids(Kind::Prompt).unwrap(), vec![id1.clone()], "{who}");
            // A second version replaces it; the first is retired.
            std::fs::write(root.join("prompts/objection.j2"), "Answer only from {{ passages }}").unwrap();
            let v2 = reg.propose("objection", Path::new("prompts/objection.j2"), None, serde_json::json!({}), &alice).unwrap();
            let id2 = VersionId { name: v2.name.clone(), version: v2.version };
            reg.submit(&id2, &alice).unwrap();
            reg.record_eval(&id2, &run(0.97), &carol, &thresholds).unwrap();
            reg.approve(&id2, "tighter", &bob, &thresholds).unwrap();
            assert_eq!(reg.get(&id1).unwrap().state, State::Retired, "{who}");
            assert_eq!(reg.live("objection").unwrap().version.version, 2, "{who}");
            // Rolling back to version 1 restores its file and makes it live.
            reg.rollback(&id1, "v2 regressed", &bob, &thresholds).unwrap_or_else(|e| panic!("{who}: {e}"));
            assert_eq!(reg.live("objection").unwrap().version.version, 1, "{who}");
            assert_eq!(reg.get(&id2).unwrap().state, State::Retired, "{who}");
            assert_eq!(reg.versions(Some("objection")).unwrap().len(), 2, "{who}");
            assert_eq!(reg.versions(None).unwrap().len(), 2, "{who}");
            assert_eq!(reg.signatures(&id1).unwrap().len(), 2, "{who}: approval and rollback");
            assert_eq!(reg.eval_runs(&id1).unwrap().len(), 2, "{who}");
            // A transition from a state read a moment ago that another process changed is refused.
            let stale = reg.get(&id2).unwrap();
            let moved = Version { state: State::InReview, ..stale };
            let e = reg.transition(&moved, &[State::InReview], "approve", "in_review", State::Approved, &bob, "x", serde_json::json!({})).unwrap_err();
            assert!(matches!(e, Error::BadState { state: State::Retired, .. }), "{who}: {e}");
            let audit = crate::audit::Audit::connect(&t.db).unwrap();
            let v = audit.verify(None).unwrap();
            assert!(v.ok, "{who}: {v:?}");
            let actions: Vec<String> = audit.rows().unwrap().into_iter().map(|(_, e)| e.action).collect();
            for a in ["prompt_proposed", "prompt_submitted", "eval_recorded", "prompt_approved", "prompt_rolled_back"] {
                assert!(actions.iter().any(|x| x == a), "{who}: no {a} in {actions:?}");
            }
        }
    }

    #[test]
    fn probe_row7_authors_can_neither_approve_nor_reject_their_own_version() {
        let (d, store, u) = scratch();
        let (alice, bob) = (&u[1], &u[2]);
        let reg = Registry::new(&store, d.path());
        let v = reg.propose("objection", Path::new("prompts/objection.j2"), None, serde_json::json!({}), alice).unwrap();
        let id = VersionId { name: v.name.clone(), version: v.version };
        reg.submit(&id, alice).unwrap();
        let thresholds = Thresholds { gate: Vec::new(), path: d.path().join("evals/thresholds.toml"), sha256: String::new() };
        let e = reg.approve(&id, "looks fine", alice, &thresholds).unwrap_err();
        assert!(matches!(e, Error::SelfApproval { .. }) && e.is_denied() && e.code() == "self_approval", "{e}");
        let e = reg.reject(&id, "not mine to judge", alice).unwrap_err();
        assert!(matches!(e, Error::SelfRejection { .. }) && e.is_denied(), "{e}");
        assert_eq!(e.code(), "self_rejection");
        assert_eq!(reg.get(&id).unwrap().state, State::InReview, "nothing was signed");
        assert!(reg.signatures(&id).unwrap().is_empty());
        // Another reviewer may reject it.
        let (v, sig) = reg.reject(&id, "needs a citation", bob).unwrap();
        assert_eq!((v.state, sig.meaning.as_str()), (State::Rejected, REJECTED));
    }

    #[test]
    fn probe_row4_a_proposal_is_confined_and_stored_by_its_relative_path() {
        let (d, store, u) = scratch();
        let alice = &u[1];
        let reg = Registry::new(&store, d.path());
        std::fs::write(d.path().join("secret.j2"), "olt_secret").unwrap();
        let abs = d.path().join("secret.j2");
        for bad in [Path::new("secret.j2"), Path::new("prompts/../secret.j2"), abs.as_path()] {
            let e = reg.propose("objection", bad, None, serde_json::json!({}), alice).unwrap_err();
            assert_eq!(e.code(), "bad_path", "{}: {e}", bad.display());
        }
        assert!(reg.versions(None).unwrap().is_empty(), "nothing was registered");
        let inside = d.path().join("prompts/objection.j2");
        let v = reg.propose("objection", &inside, None, serde_json::json!({}), alice).unwrap();
        assert_eq!(v.source_path, "prompts/objection.j2");
        let rel = reg.store_proposal("objection", Kind::Prompt, "Other {{ passages }}").unwrap();
        assert!(rel.starts_with("prompts/proposed"));
        let v2 = reg.propose("objection", &rel, None, serde_json::json!({}), alice).unwrap();
        assert_eq!(v2.version, 2);
    }
}
