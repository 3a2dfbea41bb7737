-- Eval runs started from the server (compliance's "Run eval", an MLR
-- reviewer's evidence request): kept so that a run id still answers after a
-- restart. The registry's evidence itself stays in `eval_runs` (0003); this
-- table is the job: its state, progress, who asked, and the `eval --json`
-- document once done.
CREATE TABLE eval_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    suite       TEXT NOT NULL,
    -- NAME@N when the run evaluates a registered version's stored content.
    version     TEXT,
    -- queued, running, done or failed.
    state       TEXT NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    by_user     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    result_json TEXT,
    error       TEXT,
    report_dir  TEXT NOT NULL
);
CREATE INDEX eval_jobs_by_version ON eval_jobs (version, id);
