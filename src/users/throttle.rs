//! [`SignInPolicy`]: failed sign-ins are counted per client address and per
//! user id in fixed windows. Past `throttle_after` failures in a window the
//! answer is "try again in N seconds" (HTTP 429 with `Retry-After`, exit 3 on
//! the command line) until the window ends; past `lock_after` failures of one
//! user id the user is locked until an admin unlocks them
//! ([`super::Users::unlock`]).
//!
//! Why it is built this way:
//!
//! - **Counted in the store, not in memory.** The command line and every
//!   server process (every replica) share one store — the `onlabel.sqlite`
//!   file or the PostgreSQL database — so they share one count, and a restart
//!   does not reset it (table `sign_in_failures`, SQLite migrations 6 and 7,
//!   PostgreSQL migration 2). A failure is counted in one write transaction,
//!   so two replicas cannot both miss the throttle or the lock.
//! - **Coalesced.** The hash-chained audit log is append-only and kept for
//!   years, so a flood must not grow it per request. A failure updates one
//!   counter row per (client address, user, window, reason — one of a handful
//!   of the code's own words); the audit log gets one
//!   `login_failed` record at a key's first failure in a window and one
//!   `login_throttled` record when the address or the user reaches the
//!   throttle. An address that is already throttled is refused after one
//!   indexed read and writes nothing.
//! - **Bounded.** Nothing the client chose is stored as it was sent: the
//!   address is a peer address (an IPv6 client counts by its /64), the route
//!   is the server's own template or command name, the request path is
//!   truncated to [`MAX_PATH_CHARS`] and only its SHA-256 is kept, and a user
//!   id that names no user is stored as `unknown` (with the tried id only
//!   when it is a well-formed id of at most 64 characters, else its hash).
//! - **Lockout counts only what could be guessing.** A user's count grows with
//!   failed id + token sign-ins (command line, e-signatures) and with attempts
//!   made while that *user* is throttled. Attempts refused because their
//!   *address* is throttled do not count against the user: a colleague behind
//!   the same NAT cannot lock someone else out. A bearer token that matches a
//!   user is that user's own secret (256 random bits), so the per-user
//!   throttle does not apply to it; the address throttle and the lock do.

use std::net::IpAddr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{self, Sql, Store};
use crate::vals;

/// Longest client address kept (an IPv6 /64 in text is at most 24 characters).
pub const MAX_ADDR_CHARS: usize = 64;
/// Longest part of a request path that is hashed into a failure's summary.
pub const MAX_PATH_CHARS: usize = 200;
/// Longest route template or command name kept in a failure's summary.
pub const MAX_ROUTE_CHARS: usize = 200;
/// How long counter rows are kept after their window (the audit log keeps
/// the record; the rows only serve the throttle and a recent look-back).
pub const KEEP_ROWS: Duration = Duration::days(7);
/// The pseudo user id of failures whose user id names nobody.
pub const UNKNOWN: &str = "unknown";

/// How failed sign-ins are throttled and when a user is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInPolicy {
    /// Length of the fixed counting window, seconds (windows start at
    /// multiples of it since the Unix epoch).
    pub window_secs: u64,
    /// Failures in one window from one client address, or for one user id,
    /// after which further sign-ins from it (or as them) are refused with
    /// "try again later" until the window ends.
    pub throttle_after: u32,
    /// Failures for one user id in one window after which the user is locked
    /// (until an admin unlocks them). At least `throttle_after`.
    pub lock_after: u32,
}

impl Default for SignInPolicy {
    fn default() -> SignInPolicy {
        SignInPolicy { window_secs: 15 * 60, throttle_after: 10, lock_after: 30 }
    }
}

impl SignInPolicy {
    /// Refuses a policy that could never throttle, locks before it throttles,
    /// or has no window.
    pub fn check(&self) -> Result<(), String> {
        if self.window_secs == 0 || self.window_secs > 7 * 24 * 3600 {
            return Err(format!("the sign-in window must be 1 s to 7 days, not {} s", self.window_secs));
        }
        if self.throttle_after == 0 {
            return Err("throttle_after must be at least 1".into());
        }
        if self.lock_after < self.throttle_after {
            return Err(format!("lock_after ({}) must be at least throttle_after ({})", self.lock_after, self.throttle_after));
        }
        Ok(())
    }

    /// The start of the window `now` falls in.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let w = self.window_secs.max(1) as i64;
        let t = now.timestamp();
        DateTime::from_timestamp(t - t.rem_euclid(w), 0).unwrap_or(now)
    }

    /// Whole seconds from `now` to the end of its window (at least 1): the
    /// `Retry-After` of a throttled attempt.
    pub fn retry_after(&self, now: DateTime<Utc>) -> u64 {
        let end = self.window_start(now) + Duration::seconds(self.window_secs as i64);
        ((end - now).num_milliseconds().max(0) as u64).div_ceil(1000).max(1)
    }
}

/// Where a sign-in attempt came from and what it tried: what a failure
/// records, bounded whatever the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The client's throttling key: an IPv4 address, an IPv6 /64
    /// (`2001:db8:1:2::/64`), `cli:UID` on the command line, or `unknown`.
    pub addr: String,
    /// The HTTP method, or `cli`.
    pub method: String,
    /// The server's matched route template (`/api/v1/prompts/{id}/approve`)
    /// or the command (`prompts approve`); `None` when no route matched.
    pub route: Option<String>,
    /// SHA-256 of the request path's first [`MAX_PATH_CHARS`] characters (the
    /// path is the client's text and is never stored).
    pub path_sha256: Option<String>,
}

impl Attempt {
    /// An attempt on the command line: `what` is the command (`prompts approve`).
    pub fn cli(what: &str) -> Attempt {
        Attempt { addr: cli_addr(), method: "cli".into(), route: Some(bounded(what, MAX_ROUTE_CHARS)), path_sha256: None }
    }

    /// An HTTP attempt from `peer` (none: in-process), with the matched route
    /// template if any, and the request path (hashed, never kept).
    pub fn http(peer: Option<IpAddr>, method: &str, route: Option<&str>, path: &str) -> Attempt {
        let cut: String = path.chars().take(MAX_PATH_CHARS).collect();
        Attempt {
            addr: peer.map_or_else(|| UNKNOWN.to_string(), addr_key),
            method: bounded(method, 16),
            route: route.map(|r| bounded(r, MAX_ROUTE_CHARS)),
            path_sha256: Some(sha256_hex(cut.as_bytes())),
        }
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({"addr": self.addr, "method": self.method, "route": self.route, "path_sha256": self.path_sha256})
    }
}

/// The throttling key of an IP address: IPv4 as is; IPv6 by its /64 (one
/// client usually holds a whole /64, so counting single addresses would let
/// it rotate); an IPv4-mapped IPv6 address as its IPv4.
pub fn addr_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The command line's client key: `cli:UID` of the process owner (from the
/// OS, not from the environment), or `cli`.
fn cli_addr() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata("/proc/self") {
            return format!("cli:{}", m.uid());
        }
    }
    "cli".into()
}

/// `s` cut to `max` characters, every character outside printable ASCII
/// replaced by `?`.
pub fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// A tried user id as it may be stored: itself when it is a well-formed id
/// (what `users add` accepts), else `sha256:HEX` of it.
fn tried_id(id: &str) -> String {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        id.to_string()
    } else {
        format!("sha256:{}", sha256_hex(id.as_bytes()))
    }
}

/// The counts that decide an attempt, in the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Standing {
    /// Failures from the attempt's address.
    pub addr: i64,
    /// Failures for the user (0 without a user).
    pub user: i64,
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The counts of `attempt`'s address and of `user` in the window of `now`.
pub(super) fn standing(store: &Store, policy: &SignInPolicy, addr: &str, user: Option<&str>, now: DateTime<Utc>) -> store::Result<Standing> {
    let w = stamp(policy.window_start(now));
    store.read(|c| {
        let addr_n = failures(c, "addr", addr, &w)?;
        let user_n = match user {
            Some(u) => failures(c, "user_id", u, &w)?,
            None => 0,
        };
        Ok(Standing { addr: addr_n, user: user_n })
    })
}

/// The failures counted in window `w` for `value` of column `col` (`addr`
/// or `user_id`).
fn failures(c: &mut dyn Sql, col: &str, value: &str, w: &str) -> store::Result<i64> {
    c.one(
        &format!("SELECT CAST(coalesce(sum(count), 0) AS BIGINT) FROM sign_in_failures WHERE {col} = ?1 AND window_start = ?2"),
        vals![value, w],
    )
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Recorded {
    /// The user was locked by this failure.
    pub locked_now: bool,
}

/// Records one failed (or throttled) sign-in in one write transaction:
/// bumps the (address, user, window, reason) counter, appends `login_failed` at the
/// key's first failure in the window and `login_throttled` when the address
/// or the user reaches the throttle, and locks `user` (an existing user id)
/// when its count reaches `lock_after`.
pub(super) fn record_failure(
    store: &Store,
    policy: &SignInPolicy,
    attempt: &Attempt,
    user: Option<&str>,
    tried: &str,
    reason: &'static str,
    now: DateTime<Utc>,
) -> store::Result<Recorded> {
    let window = policy.window_start(now);
    let w = stamp(window);
    let until = stamp(window + Duration::seconds(policy.window_secs as i64));
    let key_user = user.unwrap_or(UNKNOWN);
    store.transaction(|tx| {
        tx.execute("DELETE FROM sign_in_failures WHERE window_start < ?1", vals![stamp(window - KEEP_ROWS)])?;
        let count: i64 = tx.one(
            "INSERT INTO sign_in_failures (addr, user_id, window_start, reason, count, first_at, last_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
             ON CONFLICT (addr, user_id, window_start, reason) DO UPDATE SET count = sign_in_failures.count + 1, last_at = excluded.last_at
             RETURNING count",
            vals![&attempt.addr, key_user, &w, reason, stamp(now)],
        )?;
        let addr_n = failures(tx, "addr", &attempt.addr, &w)?;
        let user_n = if user.is_some() { failures(tx, "user_id", key_user, &w)? } else { 0 };
        let actor = key_user;
        if count == 1 {
            let rec = crate::audit::Record::new(actor, "unknown", "login_failed").detail(serde_json::json!({
                "reason": reason,
                "tried": tried_id(tried),
                "request": attempt.summary(),
                "window_start": w,
                "count": 1,
                "coalesced": "further failures of this address, user and reason until the window ends are counted in sign_in_failures, not appended",
            }));
            crate::audit::append_tx(tx, &rec, now)?;
        }
        let throttle = policy.throttle_after as i64;
        for (scope, n) in [("addr", addr_n), ("user", user_n)] {
            if n == throttle {
                let rec = crate::audit::Record::new(actor, "unknown", "login_throttled").detail(serde_json::json!({
                    "scope": scope, "count": n, "request": attempt.summary(), "window_start": w, "until": until,
                }));
                crate::audit::append_tx(tx, &rec, now)?;
            }
        }
        let mut out = Recorded::default();
        if let Some(u) = user {
            if user_n >= policy.lock_after as i64 {
                let changed = tx.execute(
                    "UPDATE users SET locked_at = ?2, locked_by = 'sign-in throttle' WHERE id = ?1 AND locked_at IS NULL",
                    vals![u, stamp(now)],
                )?;
                if changed == 1 {
                    let rec = crate::audit::Record::new(u, "unknown", "user_locked").detail(serde_json::json!({
                        "user": u, "failures": user_n, "window_start": w, "request": attempt.summary(),
                        "unlock": "an admin runs `onlabel users unlock USER --as ADMIN`",
                    }));
                    crate::audit::append_tx(tx, &rec, now)?;
                    out.locked_now = true;
                }
            }
        }
        Ok(out)
    })
}

/// Forgets `user`'s failures in the current window (an admin unlocked them:
/// the next failure must not lock them again at once).
pub(super) fn clear_user(tx: &mut dyn Sql, user: &str) -> store::Result<()> {
    tx.execute("DELETE FROM sign_in_failures WHERE user_id = ?1", vals![user])?;
    Ok(())
}

/// Rows in the counter table (for tests and `info`).
pub fn rows(store: &Store) -> store::Result<i64> {
    store.read(|c| c.one("SELECT count(*) FROM sign_in_failures", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_retry_after_are_whole_and_positive() {
        let p = SignInPolicy { window_secs: 60, throttle_after: 2, lock_after: 3 };
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:00:59.500Z").unwrap().with_timezone(&Utc);
        assert_eq!(p.window_start(t).to_rfc3339(), "2026-12-01T10:00:00+00:00");
        assert_eq!(p.retry_after(t), 1);
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(p.retry_after(t0), 60);
    }

    #[test]
    fn a_policy_that_locks_before_it_throttles_is_refused() {
        assert!(SignInPolicy::default().check().is_ok());
        assert!(SignInPolicy { window_secs: 0, ..Default::default() }.check().is_err());
        assert!(SignInPolicy { throttle_after: 0, ..Default::default() }.check().is_err());
        assert!(SignInPolicy { throttle_after: 5, lock_after: 4, ..Default::default() }.check().is_err());
    }

    #[test]
    fn client_text_is_bounded_and_ipv6_counts_by_its_64() {
        let a = Attempt::http(Some("2001:db8:1:2:aaaa::1".parse().unwrap()), "GET", None, &"x".repeat(65_000));
        assert_eq!(a.addr, "2001:db8:1:2::/64");
        assert_eq!(a.path_sha256.as_deref().map(str::len), Some(64));
        assert_eq!(a.route, None);
        let b = Attempt::http(Some("2001:db8:1:2:bbbb::9".parse().unwrap()), "GET", None, "/");
        assert_eq!(a.addr, b.addr);
        assert_eq!(Attempt::http(Some("::ffff:10.0.0.1".parse().unwrap()), "GET", None, "/").addr, "10.0.0.1");
        // Paths equal in their first 200 characters hash alike: the rest is never read.
        let c = Attempt::http(None, "GET", None, &"x".repeat(300));
        assert_eq!(a.path_sha256, c.path_sha256);
        assert_eq!(bounded("a\u{7}b\u{e9}", 10), "a?b?");
        assert_eq!(tried_id("alice"), "alice");
        assert!(tried_id(&"a".repeat(65)).starts_with("sha256:"));
        assert!(tried_id("a b").starts_with("sha256:"));
    }
}
