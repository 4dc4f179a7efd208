-- Data-key rotation (issue 29). A rotation adds a secrets data key that every new seal uses,
-- re-encrypts every sealed value still under the old key in the background (progress in
-- data_key_rotations), then marks the old key retired (retired_at). A retired key stays in
-- data_keys, opening nothing, until `portcullis key purge` deletes it on purpose.
ALTER TABLE data_keys ADD COLUMN retired_at BIGINT NOT NULL DEFAULT 0;

--   state: 'running', 'finished', 'failed'
CREATE TABLE data_key_rotations (
    id          TEXT PRIMARY KEY,
    old_key_id  TEXT NOT NULL,
    new_key_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    done        BIGINT NOT NULL,
    total       BIGINT NOT NULL,
    message     TEXT NOT NULL,
    started_by  TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- A recording's key, sealed by the vault. The copy in the recording file's header is sealed
-- under the data key of the day and cannot be rewritten (the file is signed chunk by chunk),
-- so the database holds the copy a data-key rotation re-encrypts; it is the one used.
CREATE TABLE recording_keys (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    wrapped_key  TEXT NOT NULL
);
