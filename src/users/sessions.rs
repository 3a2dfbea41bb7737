//! [`Sessions`]: server-side browser sessions, one row per sign-in.
//!
//! Why it is built this way:
//!
//! - **The cookie is a random key, not data.** [`Sessions::start`] makes 32
//!   random bytes (base64url, [`COOKIE_CHARS`] characters): that string is
//!   the cookie's value and is given out once. The table keeps only its
//!   SHA-256 ([`session_id`]); 256 random bits need no slow hash, and a copy
//!   of the file does not let anyone act as a signed-in person. Everything
//!   else (user, times, step-up) stays on the server, so ending a session is
//!   one write and takes effect on the next request.
//! - **Two timeouts, both explicit** ([`SessionPolicy`]): a session ends
//!   after `idle_secs` without a request and, however busy, `absolute_secs`
//!   after it started. Both are flags of `onlabel serve`.
//! - **Checked against the user on every request.** [`Sessions::check`]
//!   re-reads the user row: a disabled user's sessions end at once (reason
//!   `disabled`), a locked user's are refused while the lock lasts.
//! - **Per-session CSRF token.** Each session has its own random `csrf`
//!   value; the server demands it in `X-CSRF-Token` on every state-changing
//!   request that uses the cookie (see `server::auth`).
//! - **Step-up for e-signatures.** [`Sessions::mark_step_up`] records a fresh
//!   re-authentication; [`Sessions::take_step_up`] consumes it, so one proof
//!   signs one record.
//! - **Audited.** `session_started`, `session_ended` (with its reason) and
//!   `sessions_ended` (sign out everywhere) are audit records; the session's
//!   id appears there only as the first [`AUDIT_ID_CHARS`] hex characters
//!   of its hash.
//! - **Bounded.** At most [`MAX_OPEN_PER_USER`] open sessions per user (the
//!   least recently used is ended, reason `evicted`); ended rows are pruned
//!   [`KEEP_ENDED`] after they end; a cookie longer than [`COOKIE_CHARS`] is
//!   refused without a query.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{get_user, stamp, time, Error, Result, Role, User};
use crate::store::{self, Row, Sql, Store};
use crate::vals;

/// Characters of a cookie value (and of a CSRF token): 32 bytes, base64url
/// without padding.
pub const COOKIE_CHARS: usize = 43;
/// Most open sessions one user may have; starting one more ends the least
/// recently used (reason `evicted`).
pub const MAX_OPEN_PER_USER: i64 = 32;
/// How long an ended session's row is kept (the audit log keeps the record).
pub const KEEP_ENDED: Duration = Duration::days(30);
/// Hex characters of a session's hash shown in audit records and answers.
pub const AUDIT_ID_CHARS: usize = 12;
/// Shortest idle or absolute timeout a policy may set, seconds.
pub const MIN_TIMEOUT_SECS: u64 = 1;
/// Longest idle timeout a policy may set: one day.
pub const MAX_IDLE_SECS: u64 = 24 * 3600;
/// Longest absolute timeout a policy may set: 30 days.
pub const MAX_ABSOLUTE_SECS: u64 = 30 * 24 * 3600;

/// When sessions end by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPolicy {
    /// A session with no request for this long ends (reason `idle`).
    pub idle_secs: u64,
    /// A session ends this long after it started, however active (reason
    /// `absolute`): the person signs in again.
    pub absolute_secs: u64,
}

impl Default for SessionPolicy {
    /// 30 minutes idle, 12 hours absolute (a working day).
    fn default() -> SessionPolicy {
        SessionPolicy { idle_secs: 30 * 60, absolute_secs: 12 * 3600 }
    }
}

impl SessionPolicy {
    /// Refuses timeouts outside [`MIN_TIMEOUT_SECS`]..=[`MAX_IDLE_SECS`] /
    /// [`MAX_ABSOLUTE_SECS`], or an absolute timeout shorter than the idle one.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_TIMEOUT_SECS..=MAX_IDLE_SECS).contains(&self.idle_secs) {
            return Err(format!("the idle timeout must be {MIN_TIMEOUT_SECS} s to {MAX_IDLE_SECS} s, not {} s", self.idle_secs));
        }
        if !(MIN_TIMEOUT_SECS..=MAX_ABSOLUTE_SECS).contains(&self.absolute_secs) {
            return Err(format!("the absolute timeout must be {MIN_TIMEOUT_SECS} s to {MAX_ABSOLUTE_SECS} s, not {} s", self.absolute_secs));
        }
        if self.absolute_secs < self.idle_secs {
            return Err(format!("the absolute timeout ({} s) must be at least the idle timeout ({} s)", self.absolute_secs, self.idle_secs));
        }
        Ok(())
    }

    fn idle(&self) -> Duration {
        Duration::seconds(self.idle_secs as i64)
    }

    fn absolute(&self) -> Duration {
        Duration::seconds(self.absolute_secs as i64)
    }

    /// How stale `last_seen_at` may get before a request rewrites it: a
    /// tenth of the idle timeout, at most a minute (a session may thus end
    /// up to that much early, never late).
    fn touch_after(&self) -> Duration {
        Duration::milliseconds(((self.idle_secs * 100) as i64).min(60_000))
    }
}

/// How the person proved who they are when the session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// User id and password.
    Password,
    /// OpenID Connect single sign-on.
    Oidc,
}

impl Method {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Oidc => "oidc",
        }
    }
}

/// Why a session ended (`sessions.ended_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The person signed out of this session.
    SignedOut,
    /// The person signed out everywhere, or their password was set.
    SignedOutEverywhere,
    /// No request for the idle timeout.
    Idle,
    /// The absolute timeout passed.
    Absolute,
    /// The user was disabled.
    Disabled,
    /// The user opened more than [`MAX_OPEN_PER_USER`] sessions.
    Evicted,
}

impl EndReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::SignedOut => "signed_out",
            EndReason::SignedOutEverywhere => "signed_out_everywhere",
            EndReason::Idle => "idle",
            EndReason::Absolute => "absolute",
            EndReason::Disabled => "disabled",
            EndReason::Evicted => "evicted",
        }
    }

    fn parse(s: &str) -> Option<EndReason> {
        [EndReason::SignedOut, EndReason::SignedOutEverywhere, EndReason::Idle, EndReason::Absolute, EndReason::Disabled, EndReason::Evicted]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// What a refused request is told.
    fn explain(self, policy: &SessionPolicy) -> String {
        match self {
            EndReason::SignedOut => "it was signed out".into(),
            EndReason::SignedOutEverywhere => "it was ended by \"sign out everywhere\" or a password change".into(),
            EndReason::Idle => format!("it ended after {} without activity", span(policy.idle_secs)),
            EndReason::Absolute => format!("it reached its limit of {} after sign-in", span(policy.absolute_secs)),
            EndReason::Disabled => "the user is disabled".into(),
            EndReason::Evicted => format!("the user opened more than {MAX_OPEN_PER_USER} sessions and this was the least recently used"),
        }
    }
}

fn span(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An open session as stored (never the cookie).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// SHA-256 (hex) of the cookie: the row's key, what [`Sessions::mark_step_up`]
    /// and [`Sessions::take_step_up`] take.
    pub id: String,
    /// Whose session.
    pub user_id: String,
    /// How they signed in.
    pub method: Method,
    /// The anti-forgery token the page sends in `X-CSRF-Token`.
    #[serde(skip)]
    pub csrf: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// The last request that used it (up to a tenth of the idle timeout stale).
    pub last_seen_at: DateTime<Utc>,
    /// When the person last proved who they are (sign-in or step-up).
    pub auth_time: DateTime<Utc>,
    /// A fresh re-authentication not yet used by an e-signature.
    pub step_up_at: Option<DateTime<Utc>>,
    /// When it ends if no request comes (`last_seen_at` + idle timeout).
    pub idle_expires_at: DateTime<Utc>,
    /// When it ends however active (`created_at` + absolute timeout).
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// The short id audit records and answers show.
    pub fn short_id(&self) -> &str {
        &self.id[..AUDIT_ID_CHARS.min(self.id.len())]
    }
}

/// A session as handed out: the cookie value is shown once.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value (`onlabel_session`); only its SHA-256 is stored.
    pub cookie: String,
    /// The session's CSRF token (also on [`Session::csrf`]).
    pub csrf: String,
    /// The stored session.
    pub session: Session,
}

/// The sessions table over a [`Store`].
#[derive(Debug)]
pub struct Sessions<'a> {
    store: &'a Store,
    policy: SessionPolicy,
}

/// The stored id of a cookie value: SHA-256, hex.
pub fn session_id(cookie: &str) -> String {
    super::lookup_key(cookie)
}

/// 32 random bytes, base64url without padding.
fn random_key() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Compares two strings in time independent of where they differ (a CSRF
/// token check must not leak how much of a guess was right).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const SESSION_COLUMNS: &str = "id, user_id, method, csrf, created_at, last_seen_at, auth_time, step_up_at, ended_at, ended_reason";

/// A row with its end, if any.
struct Row_ {
    session: Session,
    ended: Option<EndReason>,
}

fn session_row(r: &Row, policy: &SessionPolicy) -> store::Result<Row_> {
    let method: String = r.get(2)?;
    let created_at = time(r, 4)?.unwrap_or_default();
    let last_seen_at = time(r, 5)?.unwrap_or_default();
    let reason: Option<String> = r.get(9)?;
    Ok(Row_ {
        session: Session {
            id: r.get(0)?,
            user_id: r.get(1)?,
            method: if method == "oidc" { Method::Oidc } else { Method::Password },
            csrf: r.get(3)?,
            created_at,
            last_seen_at,
            auth_time: time(r, 6)?.unwrap_or_default(),
            step_up_at: time(r, 7)?,
            idle_expires_at: last_seen_at + policy.idle(),
            expires_at: created_at + policy.absolute(),
        },
        ended: reason.as_deref().and_then(EndReason::parse),
    })
}

/// Ends every open session of `user` in `tx` (reason `reason`); returns how
/// many. The caller audits (one record for all of them).
pub(super) fn end_all_tx(tx: &mut dyn Sql, user: &str, reason: EndReason, now: DateTime<Utc>) -> store::Result<usize> {
    let n = tx.execute(
        "UPDATE sessions SET ended_at = ?2, ended_reason = ?3 WHERE user_id = ?1 AND ended_at IS NULL",
        vals![user, stamp(now), reason.as_str()],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

impl<'a> Sessions<'a> {
    /// Sessions in `store`, ending by `policy`.
    pub fn new(store: &'a Store, policy: SessionPolicy) -> Sessions<'a> {
        Sessions { store, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Starts a session for `user` (who has just proved who they are by
    /// `method`): returns the cookie value and CSRF token, once. Ends the
    /// user's sessions that timed out meanwhile, and the least recently used
    /// beyond [`MAX_OPEN_PER_USER`]; prunes rows ended over [`KEEP_ENDED`]
    /// ago. Audited (`session_started`).
    pub fn start(&self, user: &User, method: Method) -> Result<NewSession> {
        if user.disabled_at.is_some() || user.locked_at.is_some() {
            return Err(Error::SessionRefused { reason: format!("{} is disabled or locked", user.id) });
        }
        let cookie = random_key()?;
        let csrf = random_key()?;
        let id = session_id(&cookie);
        let now = Utc::now();
        self.store.transaction(|tx| {
            tx.execute("DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?1", vals![stamp(now - KEEP_ENDED)])?;
            let timed_out = tx.execute(
                "UPDATE sessions SET ended_at = ?2, ended_reason = CASE WHEN created_at < ?4 THEN 'absolute' ELSE 'idle' END
                 WHERE user_id = ?1 AND ended_at IS NULL AND (last_seen_at < ?3 OR created_at < ?4)",
                vals![&user.id, stamp(now), stamp(now - self.policy.idle()), stamp(now - self.policy.absolute())],
            )?;
            let open: i64 = tx.one("SELECT count(*) FROM sessions WHERE user_id = ?1 AND ended_at IS NULL", vals![&user.id])?;
            // Least recently used first; among sessions last seen in the same
            // millisecond, the oldest, then any (by id: both backends agree).
            let evicted = if open >= MAX_OPEN_PER_USER {
                tx.execute(
                    "UPDATE sessions SET ended_at = ?2, ended_reason = 'evicted' WHERE id IN (
                         SELECT id FROM sessions WHERE user_id = ?1 AND ended_at IS NULL ORDER BY last_seen_at, created_at, id LIMIT ?3)",
                    vals![&user.id, stamp(now), open - MAX_OPEN_PER_USER + 1],
                )?
            } else {
                0
            };
            tx.execute(
                "INSERT INTO sessions (id, user_id, method, csrf, created_at, last_seen_at, auth_time) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
                vals![&id, &user.id, method.as_str(), &csrf, stamp(now)],
            )?;
            let rec = crate::audit::Record::new(&user.id, user.role.as_str(), "session_started").detail(serde_json::json!({
                "session": &id[..AUDIT_ID_CHARS],
                "method": method.as_str(),
                "idle_secs": self.policy.idle_secs,
                "absolute_secs": self.policy.absolute_secs,
                "timed_out_closed": timed_out,
                "evicted": evicted,
            }));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(())
        })?;
        let session = self.get(&id)?.ok_or_else(|| Error::SessionRefused { reason: "the new session was not stored".into() })?.session;
        Ok(NewSession { cookie, csrf, session })
    }

    fn get(&self, id: &str) -> Result<Option<Row_>> {
        let policy = self.policy;
        Ok(self.store.read(|c| {
            c.query_opt(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"), vals![id])?.map(|r| session_row(&r, &policy)).transpose()
        })?)
    }

    /// The user and session of `cookie` at `now`, or why not
    /// ([`Error::SessionRefused`]; [`Error::Locked`] for a locked user).
    /// Ends (and audits) a session found past its idle or absolute timeout,
    /// or whose user is disabled; otherwise records the request in
    /// `last_seen_at` (when it is more than a tenth of the idle timeout old).
    pub fn check(&self, cookie: &str, now: DateTime<Utc>) -> Result<(User, Session)> {
        let refused = |reason: String| Err(Error::SessionRefused { reason });
        if cookie.is_empty() || cookie.len() > COOKIE_CHARS {
            return refused("the session cookie is malformed".into());
        }
        let id = session_id(cookie);
        let Some(row) = self.get(&id)? else {
            return refused("the server has no such session (it ended long ago, or the store was replaced)".into());
        };
        let s = row.session;
        if let Some(reason) = row.ended {
            return refused(reason.explain(&self.policy));
        }
        let u = self.store.read(|c| get_user(c, &s.user_id))?;
        let Some(u) = u else {
            return refused("its user no longer exists".into());
        };
        let ending = if u.disabled_at.is_some() {
            Some((EndReason::Disabled, now))
        } else if now >= s.expires_at {
            Some((EndReason::Absolute, s.expires_at))
        } else if now >= s.idle_expires_at {
            Some((EndReason::Idle, s.idle_expires_at))
        } else {
            None
        };
        if let Some((reason, at)) = ending {
            self.end_row(&s, &u, reason, at.min(now), now)?;
            return refused(reason.explain(&self.policy));
        }
        if u.locked_at.is_some() {
            return Err(Error::Locked { user: u.id.clone() });
        }
        let mut s = s;
        if now - s.last_seen_at >= self.policy.touch_after() {
            self.store.transaction(|tx| {
                tx.execute("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND ended_at IS NULL", vals![&s.id, stamp(now)])
            })?;
            s.last_seen_at = now;
            s.idle_expires_at = now + self.policy.idle();
        }
        Ok((u, s))
    }

    /// Ends one session row (if still open) and audits it.
    fn end_row(&self, s: &Session, by: &User, reason: EndReason, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool> {
        self.store.transaction(|tx| {
            let n = tx.execute(
                "UPDATE sessions SET ended_at = ?2, ended_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
                vals![&s.id, stamp(at), reason.as_str()],
            )?;
            if n == 1 {
                let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "session_ended").detail(serde_json::json!({
                    "user": s.user_id,
                    "session": s.short_id(),
                    "method": s.method.as_str(),
                    "reason": reason.as_str(),
                    "started_at": stamp(s.created_at),
                }));
                crate::audit::append_tx(tx, &rec, now)?;
            }
            Ok::<_, Error>(n == 1)
        })
    }

    /// Signs out of the session of `cookie` (reason `signed_out`; audited).
    /// Returns the session it ended, or `None` when it was unknown or had
    /// already ended (signing out twice is not an error).
    pub fn end(&self, cookie: &str) -> Result<Option<Session>> {
        if cookie.is_empty() || cookie.len() > COOKIE_CHARS {
            return Ok(None);
        }
        let Some(row) = self.get(&session_id(cookie))? else { return Ok(None) };
        if row.ended.is_some() {
            return Ok(None);
        }
        let u = self.store.read(|c| get_user(c, &row.session.user_id))?;
        let Some(u) = u else { return Ok(None) };
        let now = Utc::now();
        Ok(self.end_row(&row.session, &u, EndReason::SignedOut, now, now)?.then_some(row.session))
    }

    /// Signs `user_id` out everywhere: ends every open session of theirs
    /// (reason `signed_out_everywhere`). `by` is the user themself or an
    /// admin. One audit record (`sessions_ended`) with the count.
    pub fn end_all(&self, user_id: &str, by: &User) -> Result<usize> {
        if by.id != user_id {
            by.require(&[Role::Admin], "end another user's sessions")?;
        }
        let now = Utc::now();
        self.store.transaction(|tx| {
            let n = end_all_tx(tx, user_id, EndReason::SignedOutEverywhere, now)?;
            let rec = crate::audit::Record::new(&by.id, by.role.as_str(), "sessions_ended")
                .detail(serde_json::json!({"user": user_id, "reason": EndReason::SignedOutEverywhere.as_str(), "count": n}));
            crate::audit::append_tx(tx, &rec, now)?;
            Ok::<_, Error>(n)
        })
    }

    /// Records that the person of session `session_id` (its hash,
    /// [`Session::id`]) has just re-authenticated (a password re-entered, an
    /// OIDC `prompt=login`): sets `step_up_at` and `auth_time` to now.
    /// Refused for an ended or unknown session.
    pub fn mark_step_up(&self, session_id: &str) -> Result<()> {
        let now = stamp(Utc::now());
        let n = self.store.transaction(|tx| {
            tx.execute("UPDATE sessions SET step_up_at = ?2, auth_time = ?2 WHERE id = ?1 AND ended_at IS NULL", vals![session_id, now])
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::SessionRefused { reason: "the session has ended".into() })
        }
    }

    /// Consumes the step-up of session `session_id` if it was marked within
    /// `within` of now: true once, then false until the next
    /// [`Sessions::mark_step_up`]. False for an ended or unknown session.
    pub fn take_step_up(&self, session_id: &str, within: std::time::Duration) -> Result<bool> {
        let now = Utc::now();
        let since = now - Duration::from_std(within).unwrap_or(Duration::zero());
        let n = self.store.transaction(|tx| {
            tx.execute(
                "UPDATE sessions SET step_up_at = NULL WHERE id = ?1 AND ended_at IS NULL AND step_up_at IS NOT NULL AND step_up_at >= ?2",
                vals![session_id, stamp(since)],
            )
        })?;
        Ok(n == 1)
    }

    /// The open sessions of `user_id`, most recent first (without cookies).
    pub fn open(&self, user_id: &str) -> Result<Vec<Session>> {
        let policy = self.policy;
        let rows = self.store.read(|c| {
            c.query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND ended_at IS NULL ORDER BY created_at DESC"), vals![user_id])?
                .iter()
                .map(|r| session_row(r, &policy))
                .collect::<store::Result<Vec<_>>>()
        })?;
        Ok(rows.into_iter().map(|r| r.session).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_backend;
    use crate::users::tests::{audit_actions as actions, audit_of};
    use crate::users::Users;

    fn setup(store: &Store) -> (User, User) {
        let users = Users::new(store);
        let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
        let (rep, _) = users.add("r1", "Rep One", Role::Rep, Some(&admin)).unwrap();
        (admin, rep)
    }

    #[test]
    fn a_session_is_a_random_cookie_stored_only_as_its_hash() {
        for t in each_backend("sessions_cookie") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let (_, rep) = setup(store);
            let s = Sessions::new(store, SessionPolicy::default());
            let a = s.start(&rep, Method::Password).unwrap();
            let b = s.start(&rep, Method::Password).unwrap();
            assert_eq!(a.cookie.len(), COOKIE_CHARS);
            assert_eq!(a.csrf.len(), COOKIE_CHARS);
            assert!(a.cookie != b.cookie && a.csrf != b.csrf && a.cookie != a.csrf);
            assert!(a.cookie.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            let stored: Vec<String> = store
                .read(|c| c.query("SELECT id || ' ' || csrf FROM sessions", &[])?.iter().map(|r| r.get::<String>(0)).collect::<store::Result<Vec<_>>>())
                .unwrap();
            assert_eq!(stored.len(), 2, "{who}");
            assert!(stored.iter().all(|r| !r.contains(&a.cookie) && !r.contains(&b.cookie)));
            let (u, sess) = s.check(&a.cookie, Utc::now()).unwrap();
            assert_eq!((u.id.as_str(), sess.method, sess.csrf.as_str()), ("r1", Method::Password, a.csrf.as_str()));
            assert!(s.check("x".repeat(44).as_str(), Utc::now()).is_err());
            assert!(s.check("", Utc::now()).is_err());
            assert!(matches!(s.check(&b.cookie[1..], Utc::now()), Err(Error::SessionRefused { .. })));
            assert!(same_secret(&a.csrf, &a.csrf.clone()) && !same_secret(&a.csrf, &b.csrf) && !same_secret("a", "ab"));
        }
    }

    #[test]
    fn idle_and_absolute_timeouts_end_sessions_and_say_so() {
        for t in each_backend("sessions_timeouts") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let (_, rep) = setup(store);
            let s = Sessions::new(store, SessionPolicy { idle_secs: 60, absolute_secs: 300 });
            let a = s.start(&rep, Method::Password).unwrap();
            let t0 = a.session.created_at;
            // Active every 50 s: never idle, but ends at 300 s.
            let mut t = t0;
            for _ in 0..5 {
                t += Duration::seconds(50);
                s.check(&a.cookie, t).unwrap();
            }
            let e = s.check(&a.cookie, t0 + Duration::seconds(301)).unwrap_err();
            assert!(e.to_string().contains("limit of 5 min"), "{e}");
            // Still refused later, for the same reason.
            assert!(s.check(&a.cookie, t0 + Duration::seconds(302)).unwrap_err().to_string().contains("limit"));
            let b = s.start(&rep, Method::Password).unwrap();
            let e = s.check(&b.cookie, b.session.created_at + Duration::seconds(61)).unwrap_err();
            assert!(e.to_string().contains("1 min without activity"), "{e}");
            assert_eq!(e.code(), "unauthorized");
            let acts = actions(store);
            assert_eq!(acts.iter().filter(|a| *a == "session_ended").count(), 2, "{who}: {acts:?}");
            assert!(SessionPolicy { idle_secs: 0, absolute_secs: 10 }.check().is_err());
            assert!(SessionPolicy { idle_secs: 20, absolute_secs: 10 }.check().is_err());
            assert!(SessionPolicy { idle_secs: 2, absolute_secs: MAX_ABSOLUTE_SECS + 1 }.check().is_err());
            SessionPolicy { idle_secs: 2, absolute_secs: 2 }.check().unwrap();
            SessionPolicy::default().check().unwrap();
        }
    }

    #[test]
    fn sign_out_sign_out_everywhere_and_disabling_end_sessions() {
        for t in each_backend("sessions_sign_out") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let (admin, rep) = setup(store);
            let s = Sessions::new(store, SessionPolicy::default());
            let a = s.start(&rep, Method::Password).unwrap();
            let b = s.start(&rep, Method::Password).unwrap();
            let c = s.start(&rep, Method::Oidc).unwrap();
            assert_eq!(s.open("r1").unwrap().len(), 3);
            assert!(s.end(&a.cookie).unwrap().is_some());
            assert!(s.end(&a.cookie).unwrap().is_none(), "twice is not an error");
            assert!(s.check(&a.cookie, Utc::now()).unwrap_err().to_string().contains("signed out"));
            s.check(&b.cookie, Utc::now()).unwrap();
            assert!(s.end_all("r1", &rep).unwrap() == 2);
            let e = s.check(&c.cookie, Utc::now()).unwrap_err();
            assert!(e.to_string().contains("sign out everywhere"), "{e}");
            // Another user's sessions: only an admin.
            let d = s.start(&rep, Method::Password).unwrap();
            let other = Users::new(store).add("r2", "Rep Two", Role::Rep, Some(&admin)).unwrap().0;
            assert!(s.end_all("r1", &other).unwrap_err().is_denied());
            Users::new(store).disable("r1", &admin).unwrap();
            let e = s.check(&d.cookie, Utc::now()).unwrap_err();
            assert!(e.to_string().contains("disabled"), "{e}");
            let disabled = Users::new(store).get("r1").unwrap().unwrap();
            assert!(s.start(&disabled, Method::Password).is_err());
            let acts = actions(store);
            for a in ["session_started", "session_ended", "sessions_ended"] {
                assert!(acts.iter().any(|x| x == a), "{who}: {a} in {acts:?}");
            }
            assert!(audit_of(&t).verify(None).unwrap().ok, "{who}");
        }
    }

    #[test]
    fn a_step_up_is_consumed_once_and_only_while_fresh() {
        for t in each_backend("sessions_step_up") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let (_, rep) = setup(store);
            let s = Sessions::new(store, SessionPolicy::default());
            let a = s.start(&rep, Method::Oidc).unwrap();
            let five = std::time::Duration::from_secs(300);
            assert!(!s.take_step_up(&a.session.id, five).unwrap());
            s.mark_step_up(&a.session.id).unwrap();
            assert!(s.take_step_up(&a.session.id, five).unwrap());
            assert!(!s.take_step_up(&a.session.id, five).unwrap(), "consumed");
            s.mark_step_up(&a.session.id).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            assert!(!s.take_step_up(&a.session.id, std::time::Duration::from_millis(1)).unwrap(), "stale");
            s.end(&a.cookie).unwrap();
            assert!(s.mark_step_up(&a.session.id).is_err(), "{who}");
        }
    }

    #[test]
    fn a_user_has_a_bounded_number_of_open_sessions() {
        for t in each_backend("sessions_bounded") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let (_, rep) = setup(store);
            let s = Sessions::new(store, SessionPolicy::default());
            let first = s.start(&rep, Method::Password).unwrap();
            // Least recently used is to the millisecond: the others come later.
            std::thread::sleep(std::time::Duration::from_millis(2));
            for _ in 0..MAX_OPEN_PER_USER {
                s.start(&rep, Method::Password).unwrap();
            }
            assert_eq!(s.open("r1").unwrap().len() as i64, MAX_OPEN_PER_USER, "{who}");
            assert!(s.check(&first.cookie, Utc::now()).unwrap_err().to_string().contains("least recently used"), "{who}");
        }
    }
}
