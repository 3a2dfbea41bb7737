-- Failed sign-ins are coalesced per reason too (issue 17, row 5).
--
-- Migration 6 counted failures per (client address, user, window), so after
-- a user's first failure in a window, a different refusal of the same user
-- from the same address (their old token after they were disabled, their
-- right token while locked) was counted but never appended to the audit
-- log. The key now holds the reason, one of a handful of the code's own
-- words ('wrong token', 'unknown user', 'disabled', 'locked', 'throttled', …):
-- each kind of refusal gets its one `login_failed` record per window, and a
-- flood is still one counter row per kind. The throttle and the lockout sum
-- the counts over reasons, as before.
--
-- SQLite cannot change a primary key in place: the counters are copied into
-- a new table (the reason of a row counted before this migration is not
-- known: 'before migration 7'), and the old one is dropped.

CREATE TABLE sign_in_failures_v7 (
    addr         TEXT NOT NULL,     -- client address ('cli:NAME' on the command line)
    user_id      TEXT NOT NULL,     -- an existing user id, or 'unknown'
    window_start TEXT NOT NULL,     -- RFC 3339 UTC start of the fixed window
    reason       TEXT NOT NULL,     -- 'wrong token', 'disabled', 'throttled', … (the code's own words)
    count        INTEGER NOT NULL,  -- failures (and throttled attempts) in the window
    first_at     TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    PRIMARY KEY (addr, user_id, window_start, reason)
) STRICT;
INSERT INTO sign_in_failures_v7 (addr, user_id, window_start, reason, count, first_at, last_at)
    SELECT addr, user_id, window_start, 'before migration 7', count, first_at, last_at FROM sign_in_failures;
DROP TABLE sign_in_failures;
ALTER TABLE sign_in_failures_v7 RENAME TO sign_in_failures;
CREATE INDEX sign_in_failures_user ON sign_in_failures (user_id, window_start);
CREATE INDEX sign_in_failures_window ON sign_in_failures (window_start);
