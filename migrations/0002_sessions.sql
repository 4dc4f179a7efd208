-- Issue 3: SSH host-key pins per resource.
-- status 'pinned': the key the gateway accepts; 'pending': seen on first contact under the
-- "approve" policy, waiting for an administrator.
CREATE TABLE host_keys (
    resource_id TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    decided_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
