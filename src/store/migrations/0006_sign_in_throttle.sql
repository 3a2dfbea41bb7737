-- Failed sign-ins are throttled and can lock a user (issue 17, row 5).
--
-- `users.locked_at` is set when a user id collects too many failed sign-ins
-- in one window; a locked user cannot sign in, even with the right token,
-- until an admin unlocks them (`onlabel users unlock`). Both are audited.
--
-- `sign_in_failures` counts failures per (client address, user, window). It
-- is a counter, not the record: the hash-chained audit log gets one
-- `login_failed` record when a key's first failure in a window happens (and
-- one `login_throttled` when it reaches the throttle), so a flood of bad
-- sign-ins updates one row here instead of growing the audit log. Every
-- stored string is bounded by the code that writes it: `addr` ≤ 64 chars
-- (an IPv6 client is counted by its /64), `user_id` is an existing user's
-- id or 'unknown'. Rows of windows long past are pruned on write.

ALTER TABLE users ADD COLUMN locked_at TEXT;
ALTER TABLE users ADD COLUMN locked_by TEXT;

CREATE TABLE sign_in_failures (
    addr         TEXT NOT NULL,     -- client address ('cli:NAME' on the command line)
    user_id      TEXT NOT NULL,     -- an existing user id, or 'unknown'
    window_start TEXT NOT NULL,     -- RFC 3339 UTC start of the fixed window
    count        INTEGER NOT NULL,  -- failures (and throttled attempts) in the window
    first_at     TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    PRIMARY KEY (addr, user_id, window_start)
) STRICT;
CREATE INDEX sign_in_failures_user ON sign_in_failures (user_id, window_start);
CREATE INDEX sign_in_failures_window ON sign_in_failures (window_start);
