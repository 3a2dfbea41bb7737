-- The audit trail on PostgreSQL: the same columns, hashed the same way, as
-- the SQLite table (src/store/migrations/0004_audit_log.sql; see
-- src/audit/mod.rs). `pos` is the physical order; `seq` is the record's
-- number inside the chain and is covered by its hash.
--
-- Several processes append at once here. An append takes the advisory lock
-- of the log (src/audit/postgres.rs, APPEND_LOCK) for its transaction, reads
-- the head and inserts seq + 1: one ordered append, so the chain has one
-- head. `seq` and `prev_hash` are UNIQUE as well, so that even a writer that
-- skipped the lock could not fork the chain: its insert would fail instead.
-- The application only ever inserts; the triggers refuse anything else
-- (TRUNCATE included).

CREATE TABLE audit_log (
    pos            BIGINT PRIMARY KEY,
    seq            BIGINT NOT NULL UNIQUE,
    at             TEXT   NOT NULL,            -- RFC 3339 UTC, microsecond
    actor          TEXT   NOT NULL,
    role           TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    input          TEXT,
    prompt_version TEXT,                       -- name@N
    prompt_sha256  TEXT,
    model          TEXT,
    model_sha256   TEXT,
    passages_json  TEXT   NOT NULL,            -- retrieved passage ids
    flags_json     TEXT   NOT NULL,            -- guard flags
    output         TEXT,
    route          TEXT,
    case_id        TEXT,
    timings_json   TEXT   NOT NULL,
    detail_json    TEXT   NOT NULL,            -- action-specific facts (signature, versions, reasons)
    prev_hash      TEXT   NOT NULL UNIQUE,
    hash           TEXT   NOT NULL
);

CREATE INDEX audit_log_by_at ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
