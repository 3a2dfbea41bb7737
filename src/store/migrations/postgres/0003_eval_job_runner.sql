-- SQLite's 0013_eval_job_runner.sql: which server process runs an eval job
-- and when it last said it was alive (src/server/evals.rs, mark_interrupted),
-- so that a replica that starts fails only the jobs of a stopped runner.
ALTER TABLE eval_jobs ADD COLUMN runner TEXT COLLATE "C";
ALTER TABLE eval_jobs ADD COLUMN heartbeat_at TEXT COLLATE "C";
