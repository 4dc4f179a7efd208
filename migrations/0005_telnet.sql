-- Telnet logon scripts (issue 6). A script is JSON ({"steps": [...], "failure": [...]}, see
-- gateway/src/telnet/logon.rs); it holds patterns and placeholders, never a secret.

-- An administrator's choice for a whole resource type, replacing its built-in default.
-- `builtin` names a built-in script ('unix', 'cisco'); otherwise `script` is a custom one.
CREATE TABLE logon_scripts (
    resource_type TEXT PRIMARY KEY,
    builtin       TEXT,
    script        TEXT,
    updated_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Per-resource Telnet settings: a script override (same shape as above, both NULL: the
-- resource type's script), the account whose password is the enable secret (same
-- resource), and whether Telnet is refused unless it goes through a landing server.
CREATE TABLE resource_telnet (
    resource_id       TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    builtin           TEXT,
    script            TEXT,
    enable_account_id TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    require_landing   BIGINT NOT NULL DEFAULT 0,
    updated_by        TEXT NOT NULL,
    updated_at        BIGINT NOT NULL
);
