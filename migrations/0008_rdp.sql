-- RDP settings per resource (issue 8). No row: the defaults (NLA preferred, US keyboard,
-- clipboard off).
--   security: 'nla' (NLA required), 'nla_preferred' (NLA, else TLS), 'tls' (TLS only)
--   keyboard_layout: a Windows keyboard layout id (1033 = 0x409, US English)
--   clipboard: 'off', 'to_target' (browser -> target only), 'both'
CREATE TABLE resource_rdp (
    resource_id     TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    security        TEXT NOT NULL DEFAULT 'nla_preferred',
    keyboard_layout BIGINT NOT NULL DEFAULT 1033,
    clipboard       TEXT NOT NULL DEFAULT 'off',
    updated_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
