//! [`CODES`]: every stable error code, with the exit status the command line
//! returns for it and the HTTP status the server answers with.
//!
//! Each module error has `code()` (a [`Coded`] error); the code is the key
//! into this one table, so the command line (`cli::error`, `cli::signin`) and
//! the server (`server::ApiError`) never decide a status themselves:
//!
//! - **exit status** (DESIGN.md): 1 a check or verification failed
//!   (including a store that failed its own checks), 2 bad usage or bad
//!   input, 3 not signed in or not allowed;
//! - **HTTP status**: 4xx when the client can fix the request, 5xx when the
//!   server cannot answer. A 500 body never carries the detail: it says
//!   `internal error (request id …)` and the detail goes to the log once.
//!
//! `docs/errors.md` lists the table; a test regenerates and compares it
//! (`UPDATE_DOCS=1 cargo test --release --locked --lib error::` rewrites it).

/// Exit status: a check or verification failed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Exit status: bad usage or bad input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status: not signed in, or not allowed (wrong role, self-approval).
pub const EXIT_DENIED: i32 = 3;

/// One stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code, snake_case: what scripts and clients match on.
    pub code: &'static str,
    /// The command line's exit status for it.
    pub exit: i32,
    /// The HTTP status the server answers with.
    pub http: u16,
    /// What it means, for `docs/errors.md` (and the public message of a 5xx
    /// other than 500, whose own message may name server paths).
    pub meaning: &'static str,
}

/// An error with a stable code from [`CODES`].
pub trait Coded: std::fmt::Display {
    /// The stable code (a key of [`CODES`]).
    fn code(&self) -> &'static str;
    /// Seconds the client should wait before trying again (HTTP
    /// `Retry-After`), for a throttled request.
    fn retry_after(&self) -> Option<u64> {
        None
    }
}

/// The code of an error nothing else classifies: a bug or a failure on the
/// server's side.
pub const INTERNAL: &str = "internal";

macro_rules! codes {
    ($($code:literal => $exit:expr, $http:literal, $meaning:literal;)*) => {
        /// Every stable error code, once.
        pub const CODES: &[Code] = &[$(Code { code: $code, exit: $exit, http: $http, meaning: $meaning }),*];
    };
}

const C: i32 = EXIT_CHECK_FAILED;
const B: i32 = EXIT_BAD_INPUT;
const D: i32 = EXIT_DENIED;

codes! {
    // Anywhere.
    "internal" => B, 500, "a bug or a failure on the server's side; the detail is in the log under the request id";
    "bad_input" => B, 400, "a field or option has a bad value; the message names it and what is allowed";
    "usage" => B, 400, "the command line does not parse (see `onlabel COMMAND --help`)";
    // Signing in and roles.
    "unauthorized" => D, 401, "no bearer token, or one that was not accepted (the response carries WWW-Authenticate)";
    "bad_credential" => D, 401, "sign-in failed: unknown user, wrong token or password, or a disabled user (the message does not say which)";
    "forbidden" => D, 403, "the signed-in user's role may not use this route";
    "permission_denied" => D, 403, "the signed-in user's role may not do this";
    "signature_refused" => D, 403, "an e-signature was refused: another user's session or name, no password to re-enter, or no fresh single sign-on step-up";
    "self_approval" => D, 403, "the author of a prompt version cannot sign it; another mlr_reviewer must";
    "self_rejection" => D, 403, "the author of a prompt version cannot reject it either; another mlr_reviewer must";
    "no_credential" => D, 401, "no token was given (ONLABEL_TOKEN unset and no terminal to ask on)";
    "too_many_sign_in_failures" => D, 429, "too many failed sign-ins from this address or for this user; wait for Retry-After";
    "user_locked" => D, 403, "the user is locked after too many failed sign-ins; an admin unlocks it (`onlabel users unlock`)";
    "weak_password" => B, 400, "a new password is too short, too long, or common / easy to guess; the message says which and how to fix it";
    "csrf" => D, 403, "a request signed in with the session cookie changes something but lacks the session's `X-CSRF-Token` header";
    // The HTTP request itself.
    "not_found" => B, 404, "no such route, or no such resource at it (eval run, case action, web UI file)";
    "method_not_allowed" => B, 405, "the route exists but not with this method (the Allow header lists the methods)";
    "bad_json" => B, 400, "the body is not the JSON this route takes (a missing or unknown field, a wrong type)";
    "not_json" => B, 415, "the body must be sent with `Content-Type: application/json`";
    "bad_query" => B, 400, "the query string does not parse into this route's parameters";
    "bad_url" => B, 400, "a segment of the URL path does not parse (e.g. an eval id that is not a number)";
    "too_large" => B, 413, "a body, question, topics or notes text is over its limit; the message names the limit";
    "empty" => B, 400, "a required text field is empty";
    "bad_request" => B, 400, "the fields given do not go together (e.g. both `template` and `content`)";
    "overloaded" => B, 503, "too much work is waiting; try again in a few seconds (see Retry-After)";
    "timeout" => B, 504, "no answer within the request time; the work still finishes and is in the audit log";
    // Asking.
    "bad_question" => B, 400, "the question is empty or over the copilot's question limit";
    "unknown_product" => B, 400, "the product is not in the index (`onlabel products`, GET /api/v1/products list them)";
    "unknown_model" => B, 400, "an OpenAI-style `model` other than `onlabel` or `onlabel:PRODUCT`";
    "no_question" => B, 400, "a chat request with no user message";
    "template_invalid" => C, 500, "an approved draft template (prompts/email.j2, prompts/summary.j2) does not render: fix it and have it approved again";
    "escalation_failed" => C, 503, "the question needs Medical or Pharmacovigilance but its case could not be opened: report it by phone";
    // Query parameters and paths of the API.
    "bad_version_id" => B, 400, "a prompt version id that is not NAME@N";
    "bad_path" => B, 400, "a file path that is not relative to the repository root or contains `..`";
    "bad_kind" => B, 400, "an unknown prompt-artefact kind or case kind";
    "bad_state" => B, 400, "an unknown case state in a filter";
    "bad_time" => B, 400, "a time that is not RFC 3339 or YYYY-MM-DD";
    "bad_suite" => B, 400, "an eval suite that is not under evals/ or does not exist";
    // The command line's own.
    "bad_file" => B, 400, "a file given on the command line cannot be read or is unusable";
    "config_unreadable" => B, 500, "the config file cannot be read";
    "config_invalid" => B, 500, "the config file is not valid TOML with the known keys";
    "no_data_dir" => B, 500, "no per-user data directory (HOME unset): pass --data";
    // Corpus and index.
    "manifest_invalid" => B, 400, "a corpus manifest cannot be read or has a bad, missing or duplicate field";
    "document_invalid" => B, 400, "a corpus document is missing, too large, encrypted, corrupt, unsupported or has no text";
    "corpus_empty" => B, 400, "ingest found nothing to index; the existing index was kept";
    "index_not_set" => B, 500, "no index was given (--index, ONLABEL_INDEX or the config file)";
    "index_missing" => B, 500, "no index at the given directory: run `onlabel ingest`";
    "index_damaged" => B, 500, "the index is damaged or from an incompatible onlabel: rebuild it with `onlabel ingest`";
    "index_io" => B, 500, "the index directory cannot be written";
    "index_version" => B, 500, "a versioned index root cannot be used as asked (no or a bad CURRENT pointer, a flat index to publish into, another publish running): the message says what to run";
    "embedder_error" => B, 500, "the embedding model or the dense vectors are missing or unusable";
    // Models, rules, evals.
    "model_error" => B, 500, "the local model cannot be loaded or failed while generating";
    "bad_generator_url" => B, 400, "--generator-url (ONLABEL_GENERATOR_URL, [generator] url) is not an http:// or https:// URL";
    "generator_unavailable" => B, 503, "the inference server at --generator-url is unreachable, timed out, overloaded, broke off its stream, or its circuit is open; answers are quoted meanwhile (an answer's `fallback` says so)";
    "generator_error" => B, 502, "the inference server at --generator-url refused the request or answered outside the OpenAI API; answers are quoted meanwhile";
    "rules_invalid" => B, 500, "the guard's rules or lexicon file cannot be read or parsed";
    "suite_invalid" => B, 400, "an eval suite cannot be read, is empty, or has a bad or duplicate case";
    "report_io" => B, 500, "an eval report cannot be written";
    // The store.
    "store_io" => B, 500, "the data directory or the store file cannot be read or created";
    "store_not_a_database" => C, 500, "the store file is not an SQLite database; it was left untouched";
    "store_not_onlabel" => C, 500, "the store file is another application's SQLite database; it was left untouched";
    "store_corrupt" => C, 500, "the store file is damaged: restore it from a backup";
    "store_newer_schema" => C, 500, "the store was written by a newer onlabel; upgrade";
    "store_no_wal" => C, 500, "the store cannot use write-ahead logging (a network file system?)";
    "store_error" => C, 500, "SQLite failed on the store";
    "store_bad_row" => C, 500, "a stored row does not parse (written by something other than onlabel)";
    "store_bad_database" => B, 500, "--database / ONLABEL_DATABASE is neither postgres://… nor an SQLite file";
    "store_unsupported" => B, 500, "an operation on the SQLite store file itself was asked of PostgreSQL";
    "store_postgres" => C, 500, "PostgreSQL cannot be reached, refused the sign-in or failed a statement";
    // Users.
    "user_exists" => B, 409, "a user with this id exists (ids are never reused)";
    "user_not_found" => B, 404, "no user with this id";
    "hash_error" => B, 500, "hashing a token failed (argon2 parameters or the OS random source)";
    // The prompt registry.
    "prompt_not_found" => B, 404, "no such prompt version or name";
    "invalid_state" => B, 409, "the prompt version is not in a state that allows this step";
    "no_eval_evidence" => C, 409, "no recorded eval run meets the thresholds for this exact version";
    "not_approved" => C, 409, "the artefact has no approved version: the copilot must not run it";
    "template_altered" => C, 409, "the file on disk is not the approved content";
    "bad_thresholds" => B, 500, "the eval thresholds file is malformed";
    "io_error" => B, 500, "a registry file cannot be read or written";
    // Cases.
    "case_not_found" => B, 404, "no case with this id";
    "invalid_transition" => B, 409, "the case's state does not allow this step";
    "case_owner_invalid" => B, 400, "a case can only be assigned to an existing, enabled medical user";
    "case_has_no_owner" => B, 409, "the case must be assigned before it is worked";
    "case_closed" => B, 409, "the case is closed";
    "case_not_pv" => B, 409, "an adverse-event intake belongs to a Pharmacovigilance case, not a Medical Information one";
    "bad_intake" => B, 400, "an AE intake field has a bad value; the message names the field and what is allowed";
    // Single sign-on (OIDC).
    "oidc_not_configured" => B, 404, "single sign-on is not set up on this server (no [oidc] table in its config file)";
    "oidc_config_invalid" => B, 500, "the config file's [oidc] table has a bad or missing value; the message names it";
    "oidc_provider_failed" => B, 502, "the identity provider did not answer as OpenID Connect requires (discovery, keys or token endpoint)";
    "oidc_flow_refused" => D, 400, "the sign-in's state is unknown, expired, already used or from another browser: start again";
    "oidc_denied" => D, 401, "the identity provider refused the sign-in (e.g. access_denied)";
    "oidc_token_refused" => D, 401, "the code or the ID token was not accepted (signature, issuer, audience, nonce or expiry)";
    "oidc_no_role" => D, 403, "none of the person's identity-provider groups maps to an OnLabel role ([[oidc.roles]])";
    "oidc_step_up_refused" => D, 403, "the re-authentication for a signature was not fresh (over 2 minutes) or not the signer's own";
    // The server process.
    "bind_failed" => B, 500, "the server cannot listen on the address";
    "serve_failed" => B, 500, "the server failed while serving";
}

/// The row of `code`; `None` for a code not in the table (a bug the
/// table's tests are there to catch).
pub fn lookup(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == code)
}

/// The exit status of `code` (2, bad input, for a code not in the table).
pub fn exit_status(code: &str) -> i32 {
    lookup(code).map_or(EXIT_BAD_INPUT, |c| c.exit)
}

/// The HTTP status of `code` (500 for a code not in the table).
pub fn http_status(code: &str) -> u16 {
    lookup(code).map_or(500, |c| c.http)
}

/// `docs/errors.md`, as the table says it should read.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Error codes\n\n\
         Every error OnLabel reports has one of these stable codes: on the command line\n\
         with `--json` as `{\"error\": {\"code\", \"message\"}}` on stdout (and the exit\n\
         status below), over HTTP as the body `{\"error\": {\"code\", \"message\"}}` with the\n\
         HTTP status below. A 500 never carries the detail: its body is\n\
         `{\"error\": {\"code\": \"internal\", \"message\": \"internal error (request id …)\", \"request_id\": \"…\"}}`\n\
         and the detail is in the server's log under that request id.\n\n\
         Exit status: 1 a check or verification failed, 2 bad usage or bad input,\n\
         3 not signed in or not allowed.\n\n\
         Generated from `src/error.rs` (`CODES`); after changing the table run\n\
         `UPDATE_DOCS=1 cargo test --release --locked --lib error::`.\n\n\
         | code | exit | HTTP | meaning |\n| --- | --- | --- | --- |\n",
    );
    for c in CODES {
        s.push_str(&format!("| `{}` | {} | {} | {} |\n", c.code, c.exit, c.http, c.meaning.replace('|', "\\|")));
    }
    s
}

/// Implements [`Coded`] with the type's own `code()` (the edges, `cli` and
/// `server`, call it for their own errors: the table depends on no edge).
#[macro_export]
macro_rules! coded {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::error::Coded for $t {
            fn code(&self) -> &'static str {
                <$t>::code(self)
            }
        }
    )*};
}

impl Coded for crate::Error {
    fn code(&self) -> &'static str {
        crate::Error::code(self)
    }
    fn retry_after(&self) -> Option<u64> {
        match self {
            crate::Error::Users(u) => Coded::retry_after(u),
            _ => None,
        }
    }
}

impl Coded for crate::users::Error {
    fn code(&self) -> &'static str {
        crate::users::Error::code(self)
    }
    fn retry_after(&self) -> Option<u64> {
        match self {
            crate::users::Error::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

coded!(
    crate::store::Error,
    crate::corpus::Error,
    crate::index::Error,
    crate::index::dense::Error,
    crate::llm::Error,
    crate::copilot::Error,
    crate::guard::Error,
    crate::eval::Error,
    crate::prompts::Error,
    crate::cases::Error,
    crate::audit::Error,
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Every code some `fn code(&self)` returns, and every code the server
    /// writes by hand (`ApiError::new/bad/coded(…, "code", …)`), by file.
    fn codes_in_source() -> Vec<(String, String, Option<String>)> {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let lit = regex::Regex::new(r#""([a-z][a-z0-9_]*)""#).unwrap();
        let api = regex::Regex::new(r#"ApiError::(?:new|bad|coded)\(\s*(?:StatusCode::([A-Z_]+)\s*,\s*)?"([a-z][a-z0-9_]*)""#).unwrap();
        let mut found = Vec::new();
        for f in files {
            if f.ends_with("src/error.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let name = f.display().to_string();
            // The body of each `fn code(&self) -> &'static str`, up to its closing brace at the fn's indent.
            let mut rest = text.as_str();
            while let Some(at) = rest.find("fn code(&self) -> &'static str {") {
                let line = rest[..at].rsplit('\n').next().unwrap_or("");
                let indent = line.len() - line.trim_start().len();
                let body = &rest[at..];
                let end = body.find(&format!("\n{}}}", " ".repeat(indent))).unwrap_or(body.len());
                for c in lit.captures_iter(&body[..end]) {
                    found.push((name.clone(), c[1].to_string(), None));
                }
                rest = &body[end..];
            }
            for c in api.captures_iter(&text) {
                found.push((name.clone(), c[2].to_string(), c.get(1).map(|m| m.as_str().to_string())));
            }
        }
        found
    }

    #[test]
    fn codes_are_unique_snake_case_with_known_statuses() {
        let mut seen = BTreeSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "{} twice in the table", c.code);
            assert!(c.code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch.is_ascii_digit()), "{}", c.code);
            assert!([1, 2, 3].contains(&c.exit), "{}: exit {}", c.code, c.exit);
            assert!(axum::http::StatusCode::from_u16(c.http).is_ok_and(|s| s.is_client_error() || s.is_server_error()), "{}", c.code);
            assert!(!c.meaning.is_empty(), "{}", c.code);
        }
        // The exit statuses DESIGN.md gives, for one code of each kind.
        assert_eq!(exit_status("permission_denied"), EXIT_DENIED);
        assert_eq!(exit_status("store_corrupt"), EXIT_CHECK_FAILED);
        assert_eq!(exit_status("no_eval_evidence"), EXIT_CHECK_FAILED);
        assert_eq!(exit_status("bad_question"), EXIT_BAD_INPUT);
        assert_eq!(http_status("unauthorized"), 401);
        assert_eq!(http_status("no such code"), 500);
    }

    #[test]
    fn every_code_in_the_source_is_in_the_table_and_every_row_is_used() {
        let found = codes_in_source();
        assert!(found.len() > 60, "the scan found only {} codes: is the regex still right?", found.len());
        for (file, code, status) in &found {
            let row = lookup(code).unwrap_or_else(|| panic!("{file}: code {code:?} is not in src/error.rs CODES: add a row"));
            if let Some(name) = status {
                // `StatusCode::PAYLOAD_TOO_LARGE` ↔ 413 "Payload Too Large".
                let s = axum::http::StatusCode::from_u16(row.http).unwrap();
                let reason = s.canonical_reason().unwrap_or("").to_uppercase().replace([' ', '-'], "_");
                assert_eq!(&reason, name, "{file}: {code} is sent as {name} but the table says {}", row.http);
            }
        }
        let used: BTreeSet<&str> = found.iter().map(|(_, c, _)| c.as_str()).collect();
        // Codes the scan cannot see: clap's parse errors and the server's generic 500.
        let by_hand = ["usage", "internal"];
        for c in CODES {
            assert!(used.contains(c.code) || by_hand.contains(&c.code), "{} is in the table but nothing returns it: remove the row", c.code);
        }
    }

    #[test]
    fn one_meaning_per_store_error_everywhere() {
        let s = || crate::store::Error::Corrupt { path: "x".into(), detail: "d".into() };
        assert_eq!(crate::cases::Error::Store(s()).code(), "store_corrupt");
        assert_eq!(crate::audit::Error::Store(s()).code(), "store_corrupt");
        assert_eq!(crate::prompts::Error::Store(s()).code(), "store_corrupt");
        assert_eq!(crate::users::Error::Store(s()).code(), "store_corrupt");
        assert_eq!(crate::Error::Store(s()).code(), "store_corrupt");
        let io = crate::store::Error::Io { path: "x".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(crate::Error::Users(crate::users::Error::Store(io)).code(), "store_io");
    }

    #[test]
    fn error_codes_doc_matches_the_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/errors.md differs from src/error.rs CODES; regenerate it with\n  UPDATE_DOCS=1 cargo test --release --locked --lib error::tests::error_codes_doc_matches_the_table"
        );
    }
}
