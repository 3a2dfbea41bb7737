-- Eval jobs shared by several replicas (issue 22): which server process runs
-- a job, and when it last said it was alive. A server that starts fails only
-- the jobs it left behind itself (same runner) or whose runner stopped
-- beating (heartbeat older than the staleness bound in src/server/evals.rs),
-- never a job another live replica is running.
ALTER TABLE eval_jobs ADD COLUMN runner TEXT;
ALTER TABLE eval_jobs ADD COLUMN heartbeat_at TEXT;
