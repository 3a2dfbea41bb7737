-- People who act on OnLabel (21 CFR 11.100/11.300): one row per user id.
-- A user id is never reused or deleted: a person who leaves is disabled, so
-- every signature and audit record keeps pointing at the right person.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,              -- the login id given to --as
    name        TEXT NOT NULL,                 -- full name, printed on e-signatures
    role        TEXT NOT NULL CHECK (role IN ('rep', 'mlr_reviewer', 'compliance', 'medical', 'admin')),
    token_hash  TEXT NOT NULL,                 -- argon2id PHC string; the token itself is never stored
    created_at  TEXT NOT NULL,                 -- RFC 3339 UTC, millisecond, fixed width
    created_by  TEXT NOT NULL,                 -- the admin who added the user ('bootstrap' for the first)
    rotated_at  TEXT,                          -- last token rotation
    disabled_at TEXT,                          -- set once; a disabled user cannot sign in
    disabled_by TEXT
) STRICT;

CREATE TRIGGER users_never_deleted BEFORE DELETE ON users
BEGIN
    SELECT RAISE(ABORT, 'users are never deleted; disable them');
END;
