-- Single sign-on (OIDC, issue 21): a person who signs in through the
-- organisation's identity provider is a users row bound to the provider's
-- (issuer, subject) pair, the only stable identifier OpenID Connect gives
-- (a name or an e-mail address can change or be reassigned).
--
-- Such a user is created at their first sign-in with no token: its
-- `token_hash` (NOT NULL since migration 2) holds '!oidc', which is not a
-- PHC string and so never verifies, and `token_lookup` stays NULL. Every
-- check and trigger of migration 2 stays: ids are never reused or deleted.

ALTER TABLE users ADD COLUMN oidc_issuer TEXT;   -- the provider's issuer URL, exactly as configured
ALTER TABLE users ADD COLUMN oidc_subject TEXT;  -- the ID token's `sub` at that issuer

-- One user per identity at one provider.
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

-- Both or neither.
CREATE TRIGGER users_oidc_pair_on_insert BEFORE INSERT ON users
WHEN (NEW.oidc_issuer IS NULL) <> (NEW.oidc_subject IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'oidc_issuer and oidc_subject are set together');
END;

-- Once bound, a user stays bound to the same identity: another person's
-- subject must never take over a row that has signed records.
CREATE TRIGGER users_oidc_identity_fixed BEFORE UPDATE OF oidc_issuer, oidc_subject ON users
WHEN (NEW.oidc_issuer IS NULL) <> (NEW.oidc_subject IS NULL)
  OR (OLD.oidc_subject IS NOT NULL
      AND (NEW.oidc_issuer IS NOT OLD.oidc_issuer OR NEW.oidc_subject IS NOT OLD.oidc_subject))
BEGIN
    SELECT RAISE(ABORT, 'a user''s single sign-on identity never changes once set');
END;

-- Sign-ins in progress: one row from GET /auth/oidc/login until its callback
-- (or until it expires, 10 minutes by default). Consumed once: the callback
-- deletes the row before it redeems the code. Nothing here is a credential
-- on its own: the state is stored only as its SHA-256 and the browser it was
-- started in is proved by a cookie whose SHA-256 is kept.
CREATE TABLE oidc_flows (
    state_hash      TEXT PRIMARY KEY,   -- SHA-256 (hex) of the `state` sent to the provider
    browser_hash    TEXT NOT NULL,      -- SHA-256 (hex) of the onlabel_oidc cookie set with the redirect
    nonce           TEXT NOT NULL,      -- the ID token must carry it back
    pkce_verifier   TEXT NOT NULL,      -- PKCE code verifier (S256 challenge sent)
    return_to       TEXT NOT NULL,      -- where the UI goes afterwards: a local path, checked
    step_up_user    TEXT,               -- a step-up (prompt=login, max_age=0): the signed-in user …
    step_up_session TEXT,               -- … and the id of the session it marks
    created_at      TEXT NOT NULL,      -- RFC 3339 UTC
    CHECK ((step_up_user IS NULL) = (step_up_session IS NULL))
) STRICT;
CREATE INDEX oidc_flows_created ON oidc_flows (created_at);
