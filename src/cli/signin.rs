//! Signing in on the command line, and the exit codes and error output the
//! `users`, `prompts` and `audit` commands share.
//!
//! A command that acts for a person takes `--as USER` and reads the token
//! from `ONLABEL_TOKEN`, or — on a terminal, when the variable is unset —
//! prompts for it without echo. There is no session: every command, and so
//! every e-signature, checks both components again.

use std::io::IsTerminal;

use clap::Args;

use super::outln;
use crate::store::Store;
use crate::users::{self, SignInPolicy, User, Users};

/// Exit code: permission denied (bad credential, wrong role, self-approval).
pub const EXIT_DENIED: i32 = crate::error::EXIT_DENIED;

/// The environment variable holding the acting user's token.
pub const TOKEN_ENV: &str = "ONLABEL_TOKEN";

/// `--as USER`, for commands that act for a person.
#[derive(Debug, Args, Clone)]
pub struct SignIn {
    /// Your user id; the token comes from ONLABEL_TOKEN or a no-echo prompt.
    #[arg(long = "as", value_name = "USER")]
    pub user: String,
}

/// Environment variables of the sign-in throttle ([`policy`]); `onlabel
/// serve` takes the same settings as flags.
pub const WINDOW_ENV: &str = "ONLABEL_SIGN_IN_WINDOW_SECS";
/// See [`WINDOW_ENV`].
pub const THROTTLE_ENV: &str = "ONLABEL_SIGN_IN_THROTTLE_AFTER";
/// See [`WINDOW_ENV`].
pub const LOCK_ENV: &str = "ONLABEL_SIGN_IN_LOCK_AFTER";

/// The sign-in throttle of the command line: [`SignInPolicy::default`] with
/// each of [`WINDOW_ENV`], [`THROTTLE_ENV`] and [`LOCK_ENV`] that is set
/// overriding its value (a malformed or inconsistent value is bad input).
pub fn policy() -> Result<SignInPolicy, users::Error> {
    let mut p = SignInPolicy::default();
    let read = |name: &'static str| -> Result<Option<u64>, users::Error> {
        match std::env::var(name) {
            Ok(v) => v.trim().parse::<u64>().map(Some).map_err(|_| users::Error::BadInput {
                field: name,
                reason: format!("{v:?} is not a whole number"),
            }),
            Err(_) => Ok(None),
        }
    };
    if let Some(v) = read(WINDOW_ENV)? {
        p.window_secs = v;
    }
    if let Some(v) = read(THROTTLE_ENV)? {
        p.throttle_after = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = read(LOCK_ENV)? {
        p.lock_after = u32::try_from(v).unwrap_or(u32::MAX);
    }
    p.check().map_err(|reason| users::Error::BadInput { field: "sign-in throttle", reason })?;
    Ok(p)
}

/// Signs `who` in for `what` (the command, recorded with a failure).
pub fn sign_in(store: &Store, who: &SignIn, what: &str) -> Result<User, users::Error> {
    let token = token(&who.user)?;
    Users::with_policy(store, policy()?).authenticate(&who.user, &token, what)
}

/// Who runs a copilot command (`ask`, `email`, `summarize`, `eval`), for its
/// audit record. These commands work without an account (a fresh clone, a
/// demo), so signing in is optional:
///
/// - `--as USER` **and** `ONLABEL_TOKEN` set: the user signs in (a bad token
///   is refused, exit 3, and audited as `login_failed`); the record's actor
///   and role are the user's, and the user's role — not `--role` — decides
///   which documents may be retrieved.
/// - otherwise nobody is signed in: the actor is the operating-system user
///   (`os:NAME`) or `unknown`, the role is `--role`, and a `--as` given
///   without a token is kept on the record as a claim (`claimed_user`).
pub fn actor(store: &Store, claimed: Option<&str>, role: &str, what: &str) -> Result<crate::copilot::trace::Actor, users::Error> {
    use crate::copilot::trace::Actor;
    Ok(match optional_sign_in(store, claimed, what)? {
        Some(user) => Actor::signed_in(&user),
        None => Actor::unauthenticated(role, claimed),
    })
}

/// Signs `claimed` in when a token is set in `ONLABEL_TOKEN` (see [`actor`]);
/// `None` when no user id or no token was given.
pub fn optional_sign_in(store: &Store, claimed: Option<&str>, what: &str) -> Result<Option<User>, users::Error> {
    match (claimed, std::env::var(TOKEN_ENV)) {
        (Some(id), Ok(t)) if !t.trim().is_empty() => Ok(Some(Users::with_policy(store, policy()?).authenticate(id, t.trim(), what)?)),
        _ => Ok(None),
    }
}

fn token(user: &str) -> Result<String, users::Error> {
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        return Ok(t.trim().to_string());
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("token for {user} (not echoed): "))
            .map(|t| t.trim().to_string())
            .map_err(|e| users::Error::BadInput { field: "token", reason: e.to_string() });
    }
    Err(users::Error::NoCredential { user: users::throttle::bounded(user, 64), hint: format!("set {TOKEN_ENV} to the token (or run on a terminal to be prompted)") })
}

/// The exit code for a library error: its code's row in [`crate::error::CODES`].
pub fn exit_code(e: &crate::Error) -> i32 {
    crate::error::exit_status(e.code())
}

/// Prints `e` (and, with `--json`, the error object) and returns its exit
/// code. A refused role or self-approval is appended to the audit log
/// (failed sign-ins already are, by [`Users::authenticate`]).
pub fn report(e: &crate::Error, json: bool, db: &crate::store::Database) -> i32 {
    let denial = match e {
        crate::Error::Users(users::Error::PermissionDenied { user, role, action, .. }) => {
            Some((user.clone(), role.as_str().to_string(), action.clone()))
        }
        crate::Error::Prompts(crate::prompts::Error::Users(users::Error::PermissionDenied { user, role, action, .. })) => {
            Some((user.clone(), role.as_str().to_string(), action.clone()))
        }
        crate::Error::Prompts(crate::prompts::Error::SelfApproval { id, user }) => {
            Some((user.clone(), "mlr_reviewer".to_string(), format!("approve own version {id}")))
        }
        crate::Error::Prompts(crate::prompts::Error::SelfRejection { id, user }) => {
            Some((user.clone(), "mlr_reviewer".to_string(), format!("reject own version {id}")))
        }
        _ => None,
    };
    if let Some((user, role, action)) = denial {
        let rec = crate::audit::Record::new(&user, &role, "permission_denied")
            .detail(serde_json::json!({"attempted": action, "message": e.to_string()}));
        if let Err(ae) = Store::connect(db).map_err(crate::Error::from).and_then(|s| Ok(crate::audit::append(&s, &rec)?)) {
            eprintln!("error: could not audit the refusal: {ae}");
        }
    }
    eprintln!("error: {e}");
    if json {
        outln!("{}", serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}));
    }
    exit_code(e)
}

/// Serialises our own plain structs; never panics.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
