-- Landing servers (jump hosts) and which resources they reach (issue 7). A landing server
-- is reached itself through the landing server its primary resource is associated with, so
-- chains of any length are rows here; cycles are refused when they are configured.
CREATE TABLE landing_servers (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    location              TEXT NOT NULL DEFAULT '',
    notes                 TEXT NOT NULL DEFAULT '',
    primary_resource_id   TEXT NOT NULL REFERENCES resources(id),
    secondary_resource_id TEXT REFERENCES resources(id),
    -- The account to log in with, on the primary resource; on the secondary, the account with
    -- the same user name is used.
    account_id            TEXT NOT NULL REFERENCES accounts(id),
    mode                  TEXT NOT NULL DEFAULT 'tunnel',
    created_by            TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- The landing server that reaches a resource (none: the gateway reaches it directly).
CREATE TABLE resource_landing (
    resource_id        TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    landing_server_id  TEXT NOT NULL REFERENCES landing_servers(id),
    updated_by         TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- The landing servers a recorded session went through, in order (names, ' -> ' joined; empty:
-- direct). Also in the recording file's header.
ALTER TABLE recordings ADD COLUMN path TEXT NOT NULL DEFAULT '';
