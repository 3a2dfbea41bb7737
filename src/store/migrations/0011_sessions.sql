-- Passwords and browser sessions (issue 21, point 1).
--
-- `users.password_hash` is an argon2id PHC string (own salt), or NULL for a
-- user who has no password (a service account that signs in with its bearer
-- token only, or a user created by single sign-on). The password itself is
-- never stored. `password_set_at` is when it was last set.
--
-- `sessions` holds one row per browser sign-in. The cookie value (32 random
-- bytes, base64url) is never stored: `id` is its SHA-256 (hex), so a copy of
-- the file does not let anyone act as a signed-in person. `csrf` is the
-- session's own random anti-forgery token, sent back by the page in
-- `X-CSRF-Token` on every state-changing request. A session ends once
-- (`ended_at` + `ended_reason`); rows are kept for the record and pruned
-- by the code a while after they end (sessions are not audit records: the
-- audit log has `session_started` / `session_ended`).

ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN password_set_at TEXT;

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,               -- SHA-256 (hex) of the cookie value
    user_id      TEXT NOT NULL REFERENCES users (id),
    method       TEXT NOT NULL CHECK (method IN ('password', 'oidc')),
    csrf         TEXT NOT NULL,                  -- random per session; compared with X-CSRF-Token
    created_at   TEXT NOT NULL,                  -- RFC 3339 UTC, millisecond
    last_seen_at TEXT NOT NULL,                  -- the idle timeout counts from here
    auth_time    TEXT NOT NULL,                  -- when the person last proved who they are
    step_up_at   TEXT,                           -- a fresh re-authentication, consumed by one e-signature
    ended_at     TEXT,
    ended_reason TEXT CHECK (ended_reason IN ('signed_out', 'signed_out_everywhere', 'idle', 'absolute', 'disabled', 'evicted')),
    CHECK ((ended_at IS NULL) = (ended_reason IS NULL))
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
