//! [`Users`]: the people who act on OnLabel, their roles and their tokens.
//!
//! Users get their own module (not a `server::auth` submodule) because the
//! CLI, the registry and the server all authenticate against the same table:
//! the CLI's `--as` + token through [`Users::authenticate`], the server's
//! bearer token through [`Users::authenticate_bearer`].
//!
//! Invariants
//!
//! - **Ids are never reused.** Users are disabled, never deleted (a trigger
//!   refuses `DELETE`), so every signature and audit record keeps naming the
//!   right person (21 CFR 11.100(a), 11.300(a)).
//! - **Tokens are never stored.** A token is 32 random bytes (`olt_` + hex),
//!   printed once by `users add` / `users rotate`; the table keeps its argon2id
//!   hash (PHC string, own salt).
//! - **Two components.** Acting as someone takes the user id *and* a secret:
//!   on the command line the token, checked on every command; in a browser
//!   the password ([`password`], argon2id like tokens), which starts a
//!   server-side session ([`sessions`]) with idle and absolute timeouts. An
//!   e-signature re-enters the secret (11.200(a)(1)).
//! - **The first user bootstraps.** While the table is empty, `users add`
//!   needs no credential but must create an `admin`; after that only an
//!   admin adds or disables users.
//! - **Guessing is throttled.** Failed sign-ins are counted per client
//!   address and per user id ([`throttle`]): past the policy's throttle the
//!   answer is "try again later", past its lock the user is locked until an
//!   admin unlocks them; failures are audited coalesced, never one record per
//!   request.

pub mod oidc;
pub mod password;
pub mod sessions;
pub mod throttle;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::store::{self, Row, Sql, Store};
use crate::vals;

pub use sessions::{Method, NewSession, Session, SessionPolicy, Sessions};
pub use throttle::{Attempt, SignInPolicy};

/// The roles of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Role {
    /// A field rep: asks, drafts, summarizes.
    Rep,
    /// MLR reviewer: approves or rejects prompt versions.
    MlrReviewer,
    /// Compliance: reads the audit log, runs evals.
    Compliance,
    /// Medical / PV: works cases.
    Medical,
    /// Administers users.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [Role::Rep, Role::MlrReviewer, Role::Compliance, Role::Medical, Role::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::MlrReviewer => "mlr_reviewer",
            Role::Compliance => "compliance",
            Role::Medical => "medical",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role (rep, mlr_reviewer, compliance, medical, admin)"))
    }
}

/// What can go wrong with users and sign-in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Wrong user id, wrong token or password, or a disabled user. The message does not
    /// say which, so that it cannot be used to probe for user ids.
    #[error("sign-in failed for {user:?}: unknown user, wrong token or password, or disabled")]
    BadCredential {
        /// The user id given.
        user: String,
        /// Why, for the audit log only (never shown).
        reason: &'static str,
    },
    /// No credential was given for a user id (`--as` without a token).
    #[error("no token for {user}: {hint}")]
    NoCredential {
        /// The user id given.
        user: String,
        /// How to give one.
        hint: String,
    },
    /// The signed-in user's role may not do this.
    #[error("permission denied: {action} needs role {needs}; {user} is {role}")]
    PermissionDenied {
        /// Who tried.
        user: String,
        /// Their role.
        role: Role,
        /// What they tried.
        action: String,
        /// The role(s) that may.
        needs: String,
    },
    /// A user with this id already exists (ids are never reused).
    #[error("user {id} already exists (user ids are never reused; disabled users stay on record)")]
    Exists {
        /// The id.
        id: String,
    },
    /// No such user.
    #[error("no user {id}")]
    NotFound {
        /// The id.
        id: String,
    },
    /// A field is empty or malformed.
    #[error("{field}: {reason}")]
    BadInput {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Hashing failed (argon2 parameters or the OS random source).
    #[error("token hashing failed: {0}")]
    Hash(String),
    /// Too many failed sign-ins from this address or for this user in the
    /// current window: nothing was checked; try again later.
    #[error("too many failed sign-ins from this address or for this user; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds until the window ends (HTTP `Retry-After`).
        retry_after_secs: u64,
    },
    /// The user is locked after too many failed sign-ins; an admin unlocks.
    #[error("user {user} is locked after too many failed sign-ins; an admin must unlock it (`onlabel users unlock {user} --as ADMIN`)")]
    Locked {
        /// The locked user.
        user: String,
    },
    /// A new password breaks the [`password`] policy: too short, too long,
    /// or common / guessable. The reason says which and how to fix it.
    #[error("password refused: {reason}")]
    WeakPassword {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A session cookie that is unknown, ended (signed out, idle, past its
    /// absolute limit) or whose user is disabled or locked.
    #[error("the session is not valid: {reason}; sign in again")]
    SessionRefused {
        /// Why, in words a person can act on.
        reason: String,
    },
}

impl Error {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(e) => e.code(),
            Error::BadCredential { .. } => "bad_credential",
            Error::NoCredential { .. } => "no_credential",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::Exists { .. } => "user_exists",
            Error::NotFound { .. } => "user_not_found",
            Error::BadInput { .. } => "bad_input",
            Error::Hash(_) => "hash_error",
            Error::Throttled { .. } => "too_many_sign_in_failures",
            Error::Locked { .. } => "user_locked",
            Error::WeakPassword { .. } => "weak_password",
            Error::SessionRefused { .. } => "unauthorized",
        }
    }

    /// True for a failed, throttled or locked sign-in, a missing token, or
    /// a refused role (exit 3; HTTP 401, 429 or 403).
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Error::BadCredential { .. }
                | Error::NoCredential { .. }
                | Error::PermissionDenied { .. }
                | Error::Throttled { .. }
                | Error::Locked { .. }
                | Error::SessionRefused { .. }
        )
    }
}

/// Result with the users [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A user as stored (without the token hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Login id.
    pub id: String,
    /// Full name, printed on signatures.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When added.
    pub created_at: DateTime<Utc>,
    /// Who added them.
    pub created_by: String,
    /// Last token rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When disabled (a disabled user cannot sign in).
    pub disabled_at: Option<DateTime<Utc>>,
    /// When locked by the sign-in throttle (a locked user cannot sign in
    /// until an admin unlocks them).
    pub locked_at: Option<DateTime<Utc>>,
}

impl User {
    /// Refuses unless the user's role is one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<()> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            user: self.id.clone(),
            role: self.role,
            action: action.to_string(),
            needs: roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "),
        })
    }
}

/// A token as handed out: shown once, then only its hash exists.
#[derive(Debug, Clone)]
pub struct NewToken(pub String);

/// The users table over a [`Store`].
#[derive(Debug)]
pub struct Users<'a> {
    store: &'a Store,
    /// How failed sign-ins are throttled and when a user is locked.
    policy: SignInPolicy,
}

impl<'a> Users<'a> {
    /// Users in `store`, with the default [`SignInPolicy`].
    pub fn new(store: &'a Store) -> Users<'a> {
        Users { store, policy: SignInPolicy::default() }
    }

    /// Users in `store`, throttling failed sign-ins by `policy`.
    pub fn with_policy(store: &'a Store, policy: SignInPolicy) -> Users<'a> {
        Users { store, policy }
    }

    /// True while no user exists (the next `add` bootstraps the first admin).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.store.read(|c| c.one::<i64>("SELECT count(*) FROM users", &[]))? == 0)
    }

    /// Adds a user; returns the user and their token (print it once).
    /// `by` is the signed-in admin, or `None` to bootstrap the first admin.
    pub fn add(&self, id: &str, name: &str, role: Role, by: Option<&User>) -> Result<(User, NewToken)> {
        check_id(id)?;
        if name.trim().is_empty() {
            return Err(Error::BadInput { field: "--name", reason: "the full name is printed on signatures; give it".into() });
        }
        match by {
            Some(admin) => admin.require(&[Role::Admin], "users add")?,
            None if !self.is_empty()? => {
                return Err(Error::BadInput {
                    field: "--as",
                    reason: "users exist already; add users --as an admin (with ONLABEL_TOKEN)".into(),
                })
            }
            None if role != Role::Admin => {
                return Err(Error::BadInput { field: "--role", reason: "the first user must be an admin".into() })
            }
            None => {}
        }
        let token = new_token()?;
        let hash = hash_token(&token.0)?;
        let now = Utc::now();
        let creator = by.map_or("bootstrap".to_string(), |u| u.id.clone());
        self.store.transaction(|tx| {
            if tx.query_opt("SELECT 1 FROM users WHERE id = ?1", vals![id])?.is_some() {
                return Err(Error::Exists { id: id.to_string() });
            }
            tx.execute(
                "INSERT INTO users (id, name, role, token_hash, created_at, created_by, token_lookup) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                vals![id, name.trim(), role.as_str(), &hash, stamp(now), &creator, lookup_key(&token.0)],
            )?;
            let rec = crate::audit::Record::new(&creator, by.map_or("admin", |u| u.role.as_str()), "user_added")
                .detail(serde_json::json!({"user": id, "name": name.trim(), "role": role.as_str()}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok(())
        })?;
        let user = self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        Ok((user, token))
    }

    /// Every user, by id.
    pub fn list(&self) -> Result<Vec<User>> {
        Ok(self.store.read(|c| c.query(&format!("SELECT {COLUMNS} FROM users ORDER BY id"), &[])?.iter().map(user).collect())?)
    }

    /// One user.
    pub fn get(&self, id: &str) -> Result<Option<User>> {
        Ok(self.store.read(|c| get_user(c, id))?)
    }

    /// Checks `id` + `token` for a command-line `what` (the command): see
    /// [`Users::authenticate_from`].
    pub fn authenticate(&self, id: &str, token: &str, what: &str) -> Result<User> {
        self.authenticate_from(id, token, &Attempt::cli(what))
    }

    /// Checks `id` + `token` (the command line, an e-signature). Refused
    /// without checking when the attempt's address or the user is throttled
    /// ([`Error::Throttled`]) or the user is locked ([`Error::Locked`]).
    /// Every failure is counted and audited, coalesced ([`throttle`]); a
    /// user's count reaching the policy's `lock_after` locks them.
    pub fn authenticate_from(&self, id: &str, token: &str, attempt: &Attempt) -> Result<User> {
        let user = self.check_secret(id, attempt, Secret::Token(token))?;
        // Rows older than migration 5 get their bearer lookup key now.
        let key = lookup_key(token);
        let missing = self.store.read(|c| c.opt::<i64>("SELECT 1 FROM users WHERE id = ?1 AND token_lookup IS NULL", vals![id]))?;
        if missing.is_some() {
            self.store.transaction(|tx| tx.execute("UPDATE users SET token_lookup = ?2 WHERE id = ?1 AND token_lookup IS NULL", vals![id, key]))?;
        }
        Ok(user)
    }

    /// Checks `id` + `password` (a browser sign-in, an e-signature), throttled,
    /// counted and audited exactly like [`Users::authenticate_from`]: a wrong
    /// password is a failed sign-in, a throttled address or user is refused
    /// before any check, and a locked user stays locked. A user without a
    /// password (a service account, a single sign-on user) fails like a
    /// wrong password (reason `no password`, in the audit log only).
    pub fn verify_password(&self, id: &str, password: &str, attempt: &Attempt) -> Result<User> {
        self.check_secret(id, attempt, Secret::Password(password))
    }

    /// Sets `id`'s password after [`password::check_policy`] (with the user's
    /// id and name as words it must not lean on). A user sets their own; an
    /// admin sets anyone's. The user's open sessions end (reason
    /// `signed_out_everywhere`): whoever knew the old password is signed
    /// out. Audited (`password_set`, never the password).
    pub fn set_password(&self, id: &str, new_password: &str, by: &User) -> Result<User> {
        if by.id != id {
            by.require(&[Role::Admin], "users set-password (another user's password)")?;
        }
        let target = self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        if target.disabled_at.is_some() {
            return Err(Error::BadInput { field: "ID", reason: format!("{id} is disabled") });
        }
        password::check_policy(new_password, &[&target.id, &target.name])?;
        let hash = password::hash(new_password)?;
        let now = Utc::now();
        self.store.transaction(|tx| {
            let had: bool = tx.one("SELECT CASE WHEN password_hash IS NOT NULL THEN 1 ELSE 0 END FROM users WHERE id = ?1", vals![id])?;
            tx.execute("UPDATE users SET password_hash = ?2, password_set_at = ?3 WHERE id = ?1", vals![id, &hash, stamp(now)])?;
            let ended = sessions::end_all_tx(tx, id, sessions::EndReason::SignedOutEverywhere, now)?;
            let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "password_set")
                .detail(serde_json::json!({"user": id, "replaced": had, "sessions_ended": ended}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })
    }

    /// True when `id` has a password set.
    pub fn has_password(&self, id: &str) -> Result<bool> {
        Ok(self
            .store
            .read(|c| c.opt::<bool>("SELECT CASE WHEN password_hash IS NOT NULL THEN 1 ELSE 0 END FROM users WHERE id = ?1", vals![id]))?
            .unwrap_or(false))
    }

    /// The one throttled, counted, audited check of a user id and a secret.
    fn check_secret(&self, id: &str, attempt: &Attempt, secret: Secret<'_>) -> Result<User> {
        let now = Utc::now();
        let found: Option<(User, Option<String>)> = self.store.read(|c| {
            c.query_opt(&format!("SELECT {COLUMNS}, {} FROM users WHERE id = ?1", secret.column()), vals![id])?
                .map(|r| Ok::<_, store::Error>((user(&r)?, r.get::<Option<String>>(TOKEN_HASH)?)))
                .transpose()
        })?;
        let known = found.as_ref().map(|(u, _)| u.id.as_str());
        let standing = throttle::standing(self.store, &self.policy, &attempt.addr, known, now)?;
        let limit = self.policy.throttle_after as i64;
        if standing.addr >= limit || standing.user >= limit {
            // Attempts while the *user* is throttled count toward its lock;
            // an address throttle alone does not touch the user's count.
            if standing.user >= limit {
                throttle::record_failure(self.store, &self.policy, attempt, known, id, "throttled", now)?;
                if let Some(u) = known {
                    if self.is_locked(u)? {
                        return Err(Error::Locked { user: u.to_string() });
                    }
                }
            }
            return Err(Error::Throttled { retry_after_secs: self.policy.retry_after(now) });
        }
        let reason = match &found {
            None => "unknown user",
            Some((u, _)) if u.locked_at.is_some() => {
                throttle::record_failure(self.store, &self.policy, attempt, known, id, "locked", now)?;
                return Err(Error::Locked { user: u.id.clone() });
            }
            Some((u, _)) if u.disabled_at.is_some() => "disabled",
            Some((_, None)) => secret.missing(),
            Some((_, Some(h))) if !secret.verify(h) => secret.wrong(),
            Some((u, _)) => return Ok(u.clone()),
        };
        throttle::record_failure(self.store, &self.policy, attempt, known, id, reason, now)?;
        Err(Error::BadCredential { user: throttle::bounded(id, 64), reason })
    }

    /// Checks a bearer token alone (the HTTP server's `Authorization: Bearer
    /// TOKEN`): finds its user by [`lookup_key`], then verifies the argon2id
    /// hash. Returns the user and the stored hash (a caller that caches the
    /// check compares it later: a rotated token changes it). Refused without
    /// checking while the attempt's address is throttled; failures are
    /// counted and audited like [`Users::authenticate_from`]'s.
    pub fn authenticate_bearer(&self, token: &str, attempt: &Attempt) -> Result<(User, String)> {
        let now = Utc::now();
        self.gate(attempt)?;
        let key = lookup_key(token);
        let found: Option<(User, String)> = self.store.read(|c| {
            c.query_opt(&format!("SELECT {COLUMNS}, token_hash FROM users WHERE token_lookup = ?1"), vals![&key])?
                .map(|r| Ok::<_, store::Error>((user(&r)?, r.get::<String>(TOKEN_HASH)?)))
                .transpose()
        })?;
        let (id, reason) = match &found {
            None => (None, "unknown token"),
            Some((u, _)) if u.locked_at.is_some() => {
                throttle::record_failure(self.store, &self.policy, attempt, Some(&u.id), &u.id, "locked", now)?;
                return Err(Error::Locked { user: u.id.clone() });
            }
            Some((u, _)) if u.disabled_at.is_some() => (Some(u.id.as_str()), "disabled"),
            Some((u, h)) if !verify_token(token, h) => (Some(u.id.as_str()), "wrong token"),
            Some((u, h)) => return Ok((u.clone(), h.clone())),
        };
        throttle::record_failure(self.store, &self.policy, attempt, id, id.unwrap_or(throttle::UNKNOWN), reason, now)?;
        Err(Error::BadCredential { user: id.unwrap_or(throttle::UNKNOWN).to_string(), reason })
    }

    /// Refuses an attempt whose address is throttled ([`Error::Throttled`]),
    /// after one indexed read and without writing: what a server checks
    /// before a cached bearer check too.
    pub fn gate(&self, attempt: &Attempt) -> Result<()> {
        let now = Utc::now();
        let standing = throttle::standing(self.store, &self.policy, &attempt.addr, None, now)?;
        if standing.addr >= self.policy.throttle_after as i64 {
            return Err(Error::Throttled { retry_after_secs: self.policy.retry_after(now) });
        }
        Ok(())
    }

    fn is_locked(&self, id: &str) -> Result<bool> {
        Ok(self.get(id)?.is_some_and(|u| u.locked_at.is_some()))
    }

    /// Lifts the lock the sign-in throttle put on `id` and forgets its
    /// failures in the current window. Admins only; audited (`user_unlocked`).
    pub fn unlock(&self, id: &str, by: &User) -> Result<User> {
        by.require(&[Role::Admin], "users unlock")?;
        let target = self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        if target.locked_at.is_none() {
            return Err(Error::BadInput { field: "ID", reason: format!("{id} is not locked") });
        }
        let now = Utc::now();
        self.store.transaction(|tx| {
            tx.execute("UPDATE users SET locked_at = NULL, locked_by = NULL WHERE id = ?1", vals![id])?;
            throttle::clear_user(tx, id)?;
            let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "user_unlocked")
                .detail(serde_json::json!({"user": id, "locked_at": target.locked_at.map(stamp)}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })
    }

    /// The stored argon2id hash of `id`'s token and whether the user is
    /// active: what a cached bearer check re-reads on every request.
    pub fn current_hash(&self, id: &str) -> Result<Option<(User, String)>> {
        Ok(self.store.read(|c| {
            c.query_opt(&format!("SELECT {COLUMNS}, token_hash FROM users WHERE id = ?1"), vals![id])?
                .map(|r| Ok::<_, store::Error>((user(&r)?, r.get::<String>(TOKEN_HASH)?)))
                .transpose()
        })?)
    }

    /// Disables `id` (it can never sign in again; the id stays reserved).
    pub fn disable(&self, id: &str, by: &User) -> Result<User> {
        by.require(&[Role::Admin], "users disable")?;
        let target = self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        if target.disabled_at.is_some() {
            return Err(Error::BadInput { field: "ID", reason: format!("{id} is already disabled") });
        }
        let now = Utc::now();
        self.store.transaction(|tx| {
            if target.role == Role::Admin {
                let admins: i64 = tx.one("SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL", &[])?;
                if admins <= 1 {
                    return Err(Error::BadInput { field: "ID", reason: format!("{id} is the last active admin") });
                }
            }
            tx.execute("UPDATE users SET disabled_at = ?2, disabled_by = ?3 WHERE id = ?1", vals![id, stamp(now), &by.id])?;
            let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "user_disabled")
                .detail(serde_json::json!({"user": id}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok(())
        })?;
        self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })
    }

    /// Gives `id` a new token (the old one stops working). A user may rotate
    /// their own token; an admin may rotate anyone's.
    pub fn rotate(&self, id: &str, by: &User) -> Result<NewToken> {
        if by.id != id {
            by.require(&[Role::Admin], "users rotate (another user's token)")?;
        }
        let target = self.get(id)?.ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        if target.disabled_at.is_some() {
            return Err(Error::BadInput { field: "ID", reason: format!("{id} is disabled") });
        }
        let token = new_token()?;
        let hash = hash_token(&token.0)?;
        let now = Utc::now();
        self.store.transaction(|tx| {
            tx.execute(
                "UPDATE users SET token_hash = ?2, rotated_at = ?3, token_lookup = ?4 WHERE id = ?1",
                vals![id, &hash, stamp(now), lookup_key(&token.0)],
            )?;
            let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "token_rotated")
                .detail(serde_json::json!({"user": id}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        Ok(token)
    }
}

/// The secret a sign-in checks against its user row.
#[derive(Clone, Copy)]
enum Secret<'a> {
    /// The user's bearer token (`users.token_hash`).
    Token(&'a str),
    /// The user's password (`users.password_hash`, NULL without one).
    Password(&'a str),
}

impl Secret<'_> {
    fn column(self) -> &'static str {
        match self {
            Secret::Token(_) => "token_hash",
            Secret::Password(_) => "password_hash",
        }
    }
    fn verify(self, phc: &str) -> bool {
        match self {
            Secret::Token(t) => verify_token(t, phc),
            Secret::Password(p) => password::verify(p, phc),
        }
    }
    /// The audit reason of a failure (one of the code's own words).
    fn wrong(self) -> &'static str {
        match self {
            Secret::Token(_) => "wrong token",
            Secret::Password(_) => "wrong password",
        }
    }
    fn missing(self) -> &'static str {
        match self {
            Secret::Token(_) => "wrong token",
            Secret::Password(_) => "no password",
        }
    }
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput { field: "--id", reason: format!("{id:?}: use 1-64 letters, digits, . _ - @") })
    }
}

fn new_token() -> Result<NewToken> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(NewToken(format!("olt_{}", hex::encode(b))))
}

/// The bearer lookup key of a token: SHA-256, hex (see migration 0005).
pub fn lookup_key(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn hash_token(token: &str) -> Result<String> {
    Argon2::default().hash_password(token.as_bytes()).map(|h| h.to_string()).map_err(|e| Error::Hash(e.to_string()))
}

fn verify_token(token: &str, phc: &str) -> bool {
    // A malformed stored hash fails like a wrong token.
    Argon2::default().verify_password(token.as_bytes(), phc).is_ok()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const COLUMNS: &str = "id, name, role, created_at, created_by, rotated_at, disabled_at, locked_at";
/// Index of `token_hash` when selected after [`COLUMNS`].
const TOKEN_HASH: usize = 8;

/// Column `i` of `r` as a time (RFC 3339 text), if not NULL.
fn time(r: &Row, i: usize) -> store::Result<Option<DateTime<Utc>>> {
    let s: Option<String> = r.get(i)?;
    s.map(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| store::Error::Decode { column: i, reason: format!("{s:?} is not an RFC 3339 time: {e}") })
    })
    .transpose()
}

/// A user from a row of [`COLUMNS`].
fn user(r: &Row) -> store::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.parse().map_err(|reason: String| store::Error::Decode { column: 2, reason })?,
        created_at: time(r, 3)?.unwrap_or_default(),
        created_by: r.get(4)?,
        rotated_at: time(r, 5)?,
        disabled_at: time(r, 6)?,
        locked_at: time(r, 7)?,
    })
}

/// The user `id`, read through `c` (a connection or a transaction).
fn get_user(c: &mut dyn Sql, id: &str) -> store::Result<Option<User>> {
    c.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"), vals![id])?.map(|r| user(&r)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{each_backend, TestStore};

    /// A second handle on `t`'s database (what another process would open).
    pub(crate) fn reopen(t: &TestStore) -> Store {
        match t.store.backend() {
            store::Backend::Sqlite => Store::open(t.dir.path()).unwrap(),
            store::Backend::Postgres => Store::connect(&store::Database::parse(&t.store.shown()).unwrap()).unwrap(),
        }
    }

    /// The audit log of `t`'s database, through its own handle.
    pub(crate) fn audit_of(t: &TestStore) -> crate::audit::Audit {
        crate::audit::Audit::with_store(reopen(t))
    }

    /// Every audit record's action, in chain order.
    pub(crate) fn audit_actions(store: &Store) -> Vec<String> {
        store
            .read(|c| c.query("SELECT action FROM audit_log ORDER BY seq", &[])?.iter().map(|r| r.get::<String>(0)).collect::<store::Result<Vec<_>>>())
            .unwrap()
    }

    /// One text value a test reads back.
    pub(crate) fn text(store: &Store, sql: &str) -> String {
        store.read(|c| c.one::<String>(sql, &[])).unwrap()
    }

    #[test]
    fn bootstrap_add_authenticate_rotate_disable() {
        for t in each_backend("users_bootstrap") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::new(store);
            assert!(users.add("r1", "Rep One", Role::Rep, None).is_err(), "first user must be admin");
            let (admin, tok) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            assert!(tok.0.starts_with("olt_") && tok.0.len() == 68);
            assert!(users.add("r1", "Rep One", Role::Rep, None).is_err(), "no second bootstrap");
            let (_, rep_tok) = users.add("r1", "Rep One", Role::Rep, Some(&admin)).unwrap();
            assert!(matches!(users.add("r1", "Again", Role::Rep, Some(&admin)), Err(Error::Exists { .. })));
            let rep = users.authenticate("r1", &rep_tok.0, "test").unwrap();
            assert_eq!(rep.role, Role::Rep);
            assert!(users.add("x", "X", Role::Rep, Some(&rep)).unwrap_err().is_denied());
            assert!(users.authenticate("r1", "olt_wrong", "test").unwrap_err().is_denied());
            assert!(users.authenticate("nobody", &tok.0, "test").unwrap_err().is_denied());
            let new = users.rotate("r1", &rep).unwrap();
            assert!(users.authenticate("r1", &rep_tok.0, "test").is_err());
            users.authenticate("r1", &new.0, "test").unwrap();
            // A row from before migration 5 gets its bearer lookup key at its next sign-in.
            store.transaction(|tx| tx.execute("UPDATE users SET token_lookup = NULL WHERE id = 'r1'", &[])).unwrap();
            assert_eq!(store.read(|c| c.opt::<String>("SELECT token_lookup FROM users WHERE id = 'r1' AND token_lookup IS NOT NULL", &[])).unwrap(), None);
            users.authenticate("r1", &new.0, "test").unwrap();
            assert_eq!(text(store, "SELECT token_lookup FROM users WHERE id = 'r1'"), lookup_key(&new.0), "{who}");
            assert_eq!(users.authenticate_bearer(&new.0, &Attempt::cli("test")).unwrap().0.id, "r1", "{who}");
            users.disable("r1", &admin).unwrap();
            assert!(users.authenticate("r1", &new.0, "test").is_err());
            assert!(users.disable("root", &admin).is_err(), "last admin");
            // Four failed sign-ins, coalesced per (address, user, window, reason):
            // r1's two wrong tokens are one record, its disabled attempt another.
            let audit = audit_of(&t);
            let all = audit.range(None, None).unwrap();
            assert_eq!(all.iter().filter(|e| e.action == "login_failed").count(), 3, "{who}");
            assert!(audit.verify(None).unwrap().ok, "{who}");
            let stored = text(store, "SELECT token_hash FROM users WHERE id='root'");
            assert!(stored.starts_with("$argon2id$") && !stored.contains(&tok.0), "{who}");
        }
    }

    /// Two processes on one store (two replicas on one PostgreSQL database,
    /// or the CLI and the server on one SQLite file) count failed sign-ins
    /// as one: every attempt is counted once, the throttle and the lock are
    /// each reached and audited exactly once, and the audit chain stays one.
    #[test]
    fn two_replicas_count_failed_sign_ins_as_one() {
        for t in each_backend("users_two_replicas") {
            let who = t.name();
            eprintln!("backend: {who}");
            let other = reopen(&t);
            let p = policy(10, 30);
            let users = Users::with_policy(&t.store, p);
            let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            users.add("r1", "Rep One", Role::Rep, Some(&admin)).unwrap();
            std::thread::scope(|s| {
                for (i, store) in [&t.store, &other].into_iter().enumerate() {
                    s.spawn(move || {
                        let users = Users::with_policy(store, p);
                        for k in 0..20 {
                            // A new address each time: only the user's count can throttle.
                            let a = Attempt::http(Some(format!("10.0.{i}.{k}").parse().unwrap()), "POST", Some("/x"), "/x");
                            let e = users.authenticate_from("r1", "olt_wrong", &a).unwrap_err();
                            assert!(e.is_denied(), "{who}: {e}");
                        }
                    });
                }
            });
            let counted: i64 =
                t.store.read(|c| c.one("SELECT CAST(coalesce(sum(count), 0) AS BIGINT) FROM sign_in_failures WHERE user_id = 'r1'", &[])).unwrap();
            assert_eq!(counted, 40, "{who}: every attempt counted once");
            let actions = audit_actions(&t.store);
            assert_eq!(actions.iter().filter(|a| *a == "user_locked").count(), 1, "{who}: {actions:?}");
            assert_eq!(actions.iter().filter(|a| *a == "login_throttled").count(), 1, "{who}: {actions:?}");
            assert!(users.get("r1").unwrap().unwrap().locked_at.is_some(), "{who}");
            let v = audit_of(&t).verify(None).unwrap();
            assert!(v.ok, "{who}: {v:?}");
        }
    }

    fn policy(throttle_after: u32, lock_after: u32) -> SignInPolicy {
        SignInPolicy { window_secs: 3600, throttle_after, lock_after }
    }

    #[test]
    fn probe_row5_failed_sign_ins_throttle_then_lock_and_an_admin_unlocks() {
        for t in each_backend("users_throttle_lock") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::with_policy(store, policy(3, 5));
            let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            let (_, tok) = users.add("r1", "Rep One", Role::Rep, Some(&admin)).unwrap();
            let from = |ip: &str| Attempt::http(Some(ip.parse().unwrap()), "POST", Some("/x"), "/x");
            // Three wrong tokens from three addresses: each is a plain failure.
            for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
                assert!(matches!(users.authenticate_from("r1", "olt_wrong", &from(ip)), Err(Error::BadCredential { .. })));
            }
            // The user is throttled now, from any address, even with the right token.
            let e = users.authenticate_from("r1", &tok.0, &from("10.0.0.9")).unwrap_err();
            assert!(matches!(e, Error::Throttled { retry_after_secs } if (1..=3600).contains(&retry_after_secs)), "{e}");
            assert_eq!(e.code(), "too_many_sign_in_failures");
            assert!(e.is_denied());
            // The fifth counted attempt locks the user.
            let e = users.authenticate_from("r1", "olt_wrong", &from("10.0.0.9")).unwrap_err();
            assert!(matches!(e, Error::Locked { .. }), "{e}");
            assert!(users.get("r1").unwrap().unwrap().locked_at.is_some());
            // Only an admin unlocks; then the right token works again.
            let rep = users.get("r1").unwrap().unwrap();
            assert!(users.unlock("r1", &rep).unwrap_err().is_denied());
            let u = users.unlock("r1", &admin).unwrap();
            assert!(u.locked_at.is_none());
            assert!(users.unlock("r1", &admin).is_err(), "not locked any more");
            // Its failures were forgotten with the lock; a fresh address signs in.
            users.authenticate_from("r1", &tok.0, &from("10.0.0.20")).unwrap();
            let actions = audit_actions(store);
            for a in ["login_failed", "login_throttled", "user_locked", "user_unlocked"] {
                assert!(actions.iter().any(|x| x == a), "{who}: {a} in {actions:?}");
            }
            assert!(audit_of(&t).verify(None).unwrap().ok, "{who}");
        }
    }

    #[test]
    fn passwords_are_set_by_self_or_admin_and_checked_like_tokens() {
        for t in each_backend("users_passwords") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::with_policy(store, policy(3, 5));
            let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            let (rep, tok) = users.add("r1", "Rep One", Role::Rep, Some(&admin)).unwrap();
            let (other, _) = users.add("r2", "Rep Two", Role::Rep, Some(&admin)).unwrap();
            let from = |ip: &str| Attempt::http(Some(ip.parse().unwrap()), "POST", Some("/api/v1/sessions"), "/api/v1/sessions");
            let pw = "violet tram orbits quietly";
            // No password yet: fails like a wrong one.
            let e = users.verify_password("r1", pw, &from("10.0.0.1")).unwrap_err();
            assert!(matches!(e, Error::BadCredential { reason: "no password", .. }), "{e}");
            assert!(!users.has_password("r1").unwrap());
            assert!(users.set_password("r1", pw, &other).unwrap_err().is_denied(), "a rep cannot set another's");
            assert_eq!(users.set_password("r1", "short", &rep).unwrap_err().code(), "weak_password");
            users.set_password("r1", pw, &rep).unwrap();
            assert!(users.has_password("r1").unwrap());
            assert_eq!(users.verify_password("r1", pw, &from("10.0.0.1")).unwrap().id, "r1");
            // The token still works, and is not a password.
            users.authenticate("r1", &tok.0, "test").unwrap();
            assert!(users.verify_password("r1", &tok.0, &from("10.0.0.1")).is_err());
            // Wrong passwords count toward the same throttle and lock (the
            // missing password and the token tried above were failures 1 and 2).
            let e = users.verify_password("r1", "wrong horse battery", &from("10.0.0.2")).unwrap_err();
            assert!(matches!(e, Error::BadCredential { reason: "wrong password", .. }), "{e}");
            assert!(e.to_string().contains("wrong token or password"), "{e}");
            assert!(matches!(users.verify_password("r1", pw, &from("10.0.0.4")), Err(Error::Throttled { .. })));
            assert!(matches!(users.verify_password("r1", "nope nope nope", &from("10.0.0.5")), Err(Error::Locked { .. })));
            assert!(matches!(users.verify_password("r1", pw, &from("10.0.0.6")), Err(Error::Locked { .. })), "a locked user stays locked");
            users.unlock("r1", &admin).unwrap();
            users.verify_password("r1", pw, &from("10.0.0.7")).unwrap();
            // An admin sets anyone's; the password is never stored.
            users.set_password("r2", "copper lantern drifts eastward", &admin).unwrap();
            let stored = text(store, "SELECT password_hash FROM users WHERE id='r1'");
            assert!(stored.starts_with("$argon2id$") && !stored.contains(pw), "{who}");
            let actions = audit_actions(store);
            assert_eq!(actions.iter().filter(|a| *a == "password_set").count(), 2, "{who}");
            assert!(actions.iter().any(|a| a == "user_locked"), "{who}");
        }
    }

    #[test]
    fn probe_row5_an_address_throttle_does_not_count_against_the_user() {
        for t in each_backend("users_address_throttle") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::with_policy(store, policy(2, 2));
            let (admin, tok) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            let nat = Attempt::http(Some("192.0.2.7".parse().unwrap()), "GET", Some("/x"), "/x");
            for _ in 0..2 {
                assert!(users.authenticate_bearer("olt_guess", &nat).is_err());
            }
            for _ in 0..20 {
                assert!(matches!(users.authenticate_bearer(&tok.0, &nat), Err(Error::Throttled { .. })));
                assert!(matches!(users.authenticate_from("root", &tok.0, &nat), Err(Error::Throttled { .. })));
            }
            assert!(users.get("root").unwrap().unwrap().locked_at.is_none(), "{who}: a shared address cannot lock a user out");
            let elsewhere = Attempt::http(Some("198.51.100.1".parse().unwrap()), "GET", Some("/x"), "/x");
            assert_eq!(users.authenticate_bearer(&tok.0, &elsewhere).unwrap().0, admin, "{who}");
        }
    }

    #[test]
    fn probe_row5_a_flood_of_bad_tokens_grows_the_store_by_a_bounded_amount() {
        for t in each_backend("users_flood") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::with_policy(store, policy(10, 30));
            users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            let long_path = format!("/api/v1/{}", "a".repeat(65_000));
            let a = Attempt::http(Some("203.0.113.5".parse().unwrap()), "GET", None, &long_path);
            let before = audit_actions(store).len();
            let mut throttled = 0;
            for i in 0..200 {
                match users.authenticate_bearer(&format!("olt_bad{i}"), &a) {
                    Err(Error::Throttled { .. }) => throttled += 1,
                    Err(Error::BadCredential { .. }) => {}
                    other => panic!("{who}: {other:?}"),
                }
            }
            assert_eq!(throttled, 190, "{who}: after 10 failures the address is throttled");
            let added = audit_actions(store).len() - before;
            assert_eq!(added, 2, "{who}: one login_failed and one login_throttled, not one record per request");
            assert_eq!(throttle::rows(store).unwrap(), 1, "{who}");
            let longest: i64 = store.read(|c| c.one("SELECT max(length(detail_json) + length(actor)) FROM audit_log", &[])).unwrap();
            assert!(longest < 1_000, "{who}: audit details stay small: {longest}");
            // A CLI attempt with a huge, malformed user id is stored bounded too.
            let e = users.authenticate(&"x y".repeat(20_000), "olt_bad", "prompts approve").unwrap_err();
            assert!(e.to_string().len() < 300, "{who}: {}", e.to_string().len());
        }
    }
}
