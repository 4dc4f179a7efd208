-- The rotation engine (issue 9): how a resource's accounts are rotated, the jobs, and the
-- pending secrets of the two-phase change (a crash at any step loses no working secret).
--   method: 'postgres' (ALTER ROLE, as the resource's privileged account)
--   db_tls: 'disable', 'prefer', 'require', 'verify_full'
CREATE TABLE resource_rotation (
    resource_id           TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    method                TEXT NOT NULL,
    privileged_account_id TEXT,
    db_name               TEXT NOT NULL,
    db_tls                TEXT NOT NULL,
    updated_by            TEXT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- state: 'queued', 'deferred' (waits for a live session to end), 'running', 'succeeded',
-- 'failed'. step: where it is, in words, for people.
CREATE TABLE rotation_jobs (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    resource_id   TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    reason        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    state         TEXT NOT NULL,
    step          TEXT NOT NULL,
    message       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT
);
CREATE INDEX rotation_jobs_state ON rotation_jobs (state, created_at);

-- The new secret between "stored" and "committed" (sealed like every secret).
--   phase: 'stored' (the target was not asked yet), 'changed' (the target was asked)
CREATE TABLE pending_secrets (
    account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    job_id     TEXT NOT NULL,
    secret_enc TEXT NOT NULL,
    phase      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
