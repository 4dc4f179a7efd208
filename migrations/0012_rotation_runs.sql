-- Rotation engine, second part (issue 9): verification jobs, runs (a scheduled or nightly
-- batch, with its summary), schedules, the last check of each account, and the per-account
-- "rotate after each session" policy.
--   rotation_jobs.kind: 'rotate' or 'verify'
--   rotation_jobs.result: verify: 'in_sync', 'out_of_sync' (the target refused the stored
--     secret), 'unreachable' (could not ask); rotate: 'rotated' or '' (see message)
ALTER TABLE rotation_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'rotate';
ALTER TABLE rotation_jobs ADD COLUMN result TEXT NOT NULL DEFAULT '';
ALTER TABLE rotation_jobs ADD COLUMN run_id TEXT;
CREATE INDEX rotation_jobs_run ON rotation_jobs (run_id);

--   kind: 'rotate' or 'verify'; trig: 'nightly', 'schedule', 'on_demand'
CREATE TABLE rotation_runs (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    trig       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX rotation_runs_created ON rotation_runs (trig, created_at);

--   target_kind: 'resource' or 'group'; time_of_day: minutes after midnight UTC
CREATE TABLE rotation_schedules (
    id              TEXT PRIMARY KEY,
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    interval_days   INTEGER NOT NULL,
    time_of_day     INTEGER NOT NULL,
    notice_minutes  INTEGER NOT NULL,
    next_run_at     BIGINT NOT NULL,
    notice_sent_for BIGINT,
    last_run_id     TEXT,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

--   state: 'in_sync', 'out_of_sync', 'unreachable'
CREATE TABLE account_checks (
    account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    message    TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);

CREATE TABLE account_rotation_policy (
    account_id    TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    after_session INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
