-- Escalations to Pharmacovigilance (PV) and Medical Information (MIR).
-- Cases and their history are never deleted; history is append-only.

-- The last sequence number handed out per kind and year. Allocated in the
-- same transaction as the case insert, so an id is used exactly once.
CREATE TABLE case_sequences (
    kind TEXT    NOT NULL,
    year INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (kind, year)
) STRICT;

CREATE TABLE cases (
    id              TEXT PRIMARY KEY,          -- PV-2026-000001 / MIR-2026-000001
    kind            TEXT    NOT NULL CHECK (kind IN ('pharmacovigilance', 'medical_information')),
    year            INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('new', 'triaged', 'in_progress', 'closed')),
    owner           TEXT,
    product         TEXT,
    question        TEXT    NOT NULL,          -- verbatim, as the rep typed it
    reporter        TEXT    NOT NULL,          -- the rep's user id
    hcp             TEXT,
    patient         TEXT,
    suspect_product TEXT,
    event           TEXT,
    flags_json      TEXT    NOT NULL CHECK (json_valid(flags_json)),
    resolution      TEXT,
    created_at      TEXT    NOT NULL,          -- RFC 3339 UTC, millisecond, fixed width: sorts as text
    updated_at      TEXT    NOT NULL,
    due_at          TEXT    NOT NULL,
    closed_at       TEXT,
    UNIQUE (kind, year, seq)
) STRICT;

CREATE INDEX cases_by_state_due ON cases (state, due_at);
CREATE INDEX cases_by_owner ON cases (owner, state);

CREATE TABLE case_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('opened', 'assigned', 'transitioned')),
    from_state TEXT,                           -- NULL when the case is opened
    to_state   TEXT NOT NULL,
    note       TEXT
) STRICT;

CREATE INDEX case_history_by_case ON case_history (case_id, id);

CREATE TRIGGER cases_never_deleted BEFORE DELETE ON cases
BEGIN
    SELECT RAISE(ABORT, 'cases are never deleted');
END;

CREATE TRIGGER case_history_no_update BEFORE UPDATE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only');
END;

CREATE TRIGGER case_history_no_delete BEFORE DELETE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only');
END;
