-- The audit trail: one row per action, hash-chained (see src/audit/mod.rs).
-- `pos` is the physical order; `seq` is the record's number inside the chain
-- and is covered by its hash, so a moved, removed or added row shows up as a
-- gap, a repeat or a broken link when `onlabel audit verify` walks `pos`.
-- The application only ever inserts; the triggers refuse anything else.

CREATE TABLE audit_log (
    pos            INTEGER PRIMARY KEY,
    seq            INTEGER NOT NULL,
    at             TEXT    NOT NULL,           -- RFC 3339 UTC, microsecond
    actor          TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    input          TEXT,
    prompt_version TEXT,                       -- name@N
    prompt_sha256  TEXT,
    model          TEXT,
    model_sha256   TEXT,
    passages_json  TEXT    NOT NULL,           -- retrieved passage ids
    flags_json     TEXT    NOT NULL,           -- guard flags
    output         TEXT,
    route          TEXT,
    case_id        TEXT,
    timings_json   TEXT    NOT NULL,
    detail_json    TEXT    NOT NULL,           -- action-specific facts (signature, versions, reasons)
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_by_seq ON audit_log (seq);
CREATE INDEX audit_log_by_at ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
