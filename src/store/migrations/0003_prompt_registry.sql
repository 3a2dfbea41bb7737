-- The prompt registry: versioned artefacts (prompt templates, guard rules,
-- lexicons), their MLR e-signatures and the eval runs that justify them.
-- Versions are never deleted; signatures and eval runs are append-only.

CREATE TABLE prompt_versions (
    name             TEXT    NOT NULL,         -- objection, guard-rules, ae_terms
    version          INTEGER NOT NULL CHECK (version >= 1),
    kind             TEXT    NOT NULL CHECK (kind IN ('prompt', 'rules', 'lexicon')),
    source_path      TEXT    NOT NULL,         -- where the artefact lives on disk (checked at load)
    content          TEXT    NOT NULL,         -- the exact text that was proposed, reviewed and signed
    sha256           TEXT    NOT NULL CHECK (length(sha256) = 64),
    params_json      TEXT    NOT NULL CHECK (json_valid(params_json)),
    author           TEXT    NOT NULL REFERENCES users (id),
    created_at       TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('draft', 'in_review', 'approved', 'retired', 'rejected')),
    state_changed_at TEXT    NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

-- At most one live (approved) version per name.
CREATE UNIQUE INDEX prompt_versions_one_live ON prompt_versions (name) WHERE state = 'approved';

CREATE TRIGGER prompt_versions_never_deleted BEFORE DELETE ON prompt_versions
BEGIN
    SELECT RAISE(ABORT, 'prompt versions are never deleted');
END;

-- What a version is may never change once proposed; only its state moves.
CREATE TRIGGER prompt_versions_content_frozen
BEFORE UPDATE OF name, version, kind, content, sha256, params_json, author, created_at ON prompt_versions
BEGIN
    SELECT RAISE(ABORT, 'a prompt version is immutable; propose a new version');
END;

CREATE TABLE eval_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    sha256            TEXT    NOT NULL,        -- the version's hash when it was evaluated
    suite_path        TEXT    NOT NULL,
    suite_sha256      TEXT    NOT NULL,
    model             TEXT,                    -- model file (NULL: extractive)
    model_sha256      TEXT,
    versions_json     TEXT    NOT NULL CHECK (json_valid(versions_json)),   -- every artefact in play, name@N
    metrics_json      TEXT    NOT NULL CHECK (json_valid(metrics_json)),
    thresholds_json   TEXT    NOT NULL CHECK (json_valid(thresholds_json)), -- the minimums it was judged against
    thresholds_sha256 TEXT    NOT NULL,
    passed            INTEGER NOT NULL CHECK (passed IN (0, 1)),
    recorded_by       TEXT    NOT NULL REFERENCES users (id),
    recorded_at       TEXT    NOT NULL,
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version)
) STRICT;

CREATE INDEX eval_runs_by_version ON eval_runs (name, version, id);

-- E-signatures (21 CFR 11.50, 11.70): who (id and full name), when (UTC),
-- what it means, why; bound to the signed version's hash by `binding`,
-- sha256 over all of these fields, so a row copied to another version or
-- edited no longer verifies.
CREATE TABLE prompt_signatures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    signer_id   TEXT    NOT NULL REFERENCES users (id),
    signer_name TEXT    NOT NULL,
    signer_role TEXT    NOT NULL,
    meaning     TEXT    NOT NULL CHECK (meaning IN ('approved for use', 'rejected')),
    reason      TEXT    NOT NULL CHECK (length(trim(reason)) > 0),
    signed_at   TEXT    NOT NULL,
    eval_run_id INTEGER REFERENCES eval_runs (id),
    binding     TEXT    NOT NULL CHECK (length(binding) = 64),
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version)
) STRICT;

CREATE INDEX prompt_signatures_by_version ON prompt_signatures (name, version, id);

CREATE TRIGGER eval_runs_no_update BEFORE UPDATE ON eval_runs
BEGIN
    SELECT RAISE(ABORT, 'eval runs are append-only');
END;
CREATE TRIGGER eval_runs_no_delete BEFORE DELETE ON eval_runs
BEGIN
    SELECT RAISE(ABORT, 'eval runs are append-only');
END;
CREATE TRIGGER prompt_signatures_no_update BEFORE UPDATE ON prompt_signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;
CREATE TRIGGER prompt_signatures_no_delete BEFORE DELETE ON prompt_signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;
