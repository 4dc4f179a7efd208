-- Issue 4: one row per session recording (the file itself lives in the recording store).
-- status: recording (being written) | complete (closed, manifest signed) | incomplete (the
-- server stopped mid-session; verifies up to its last flushed chunk) | failed (storage failed).
CREATE TABLE recordings (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    client_addr   TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    end_reason    TEXT,
    size_bytes    BIGINT NOT NULL DEFAULT 0,
    chunks        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX recordings_started ON recordings (started_at);
CREATE INDEX recordings_user ON recordings (user_id);

-- Keys the server signs with (the recording manifest key). The private half is sealed by the
-- vault; the public half is published so auditors can verify exports offline.
CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY,
    purpose        TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Per-resource recording override: 'always' or 'never' (no row: the global setting).
CREATE TABLE resource_recording (
    resource_id TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    mode        TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Search index per recording (see recorder/src/search.rs): a Bloom filter of keyed word hashes
-- (useless without the server's search key) and the recording's text lines, sealed by the vault.
CREATE TABLE recording_index (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    bloom        TEXT NOT NULL,
    sealed_lines TEXT NOT NULL,
    line_count   BIGINT NOT NULL
);

-- Sessions that are live now, so that a restart after a crash can audit the end of the
-- sessions it cut off (recorded or not). A row lives from session start to session end.
CREATE TABLE live_sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    client_addr   TEXT NOT NULL,
    started_at    BIGINT NOT NULL
);

-- Per-resource session limits (issue 5), overriding the global settings. NULL: the global
-- setting; 0: no limit for this resource.
CREATE TABLE resource_session_limits (
    resource_id    TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    idle_limit_s   BIGINT,
    max_duration_s BIGINT,
    updated_by     TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);
