-- Issue 20.2/20.5: the AE intake of a Pharmacovigilance case (ICH E2D
-- elements), kept as versions, and a case history that can say so.

-- Every save of a case's intake is a new row: the current intake is the
-- highest version, and the earlier values are never lost (append-only).
CREATE TABLE case_intake (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id     TEXT    NOT NULL REFERENCES cases (id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    at          TEXT    NOT NULL,              -- RFC 3339 UTC, millisecond, fixed width
    actor       TEXT    NOT NULL,              -- who saved it (the reporting rep or a medical user)
    intake_json TEXT    NOT NULL CHECK (json_valid(intake_json)),
    UNIQUE (case_id, version)
) STRICT;

CREATE TRIGGER case_intake_no_update BEFORE UPDATE ON case_intake
BEGIN
    SELECT RAISE(ABORT, 'case intake versions are append-only');
END;

CREATE TRIGGER case_intake_no_delete BEFORE DELETE ON case_intake
BEGIN
    SELECT RAISE(ABORT, 'case intake versions are append-only');
END;

-- case_history's CHECK (0001) names only opened/assigned/transitioned. An
-- intake save and a reopening are history too: the table is rebuilt with
-- the wider CHECK, every row copied with its id (SQLite cannot alter a
-- CHECK in place; DROP TABLE fires no trigger).
CREATE TABLE case_history_v9 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('opened', 'assigned', 'transitioned', 'intake', 'reopened')),
    from_state TEXT,                           -- NULL when the case is opened
    to_state   TEXT NOT NULL,
    note       TEXT
) STRICT;

INSERT INTO case_history_v9 (id, case_id, at, actor, action, from_state, to_state, note)
    SELECT id, case_id, at, actor, action, from_state, to_state, note FROM case_history ORDER BY id;

DROP TABLE case_history;
ALTER TABLE case_history_v9 RENAME TO case_history;

CREATE INDEX case_history_by_case ON case_history (case_id, id);

CREATE TRIGGER case_history_no_update BEFORE UPDATE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only');
END;

CREATE TRIGGER case_history_no_delete BEFORE DELETE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only');
END;

-- The case page links to the audit records of its case (opened, the rep's
-- ask, every change): found by case id, not by a scan of the whole log.
CREATE INDEX IF NOT EXISTS audit_log_by_case_id ON audit_log (case_id);
