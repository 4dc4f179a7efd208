-- Pins are keyed by resource and protocol (issue 29): an SSH host key and an RDP server
-- certificate of the same resource used to share one row, each replacing the other's pin.
-- Existing pins move to 'ssh' where the resource has an SSH port (hop pins and SSH targets),
-- else to 'rdp'. A resource with both whose one pin was its certificate sees a mismatch on
-- its next SSH connection (refused, with the key offered for approval): it fails closed.
CREATE TABLE host_key_pins (
    resource_id         TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    protocol            TEXT NOT NULL,  -- 'ssh' (host key) or 'rdp' (TLS certificate)
    fingerprint         TEXT NOT NULL,
    status              TEXT NOT NULL,
    decided_by          TEXT NOT NULL,
    updated_at          BIGINT NOT NULL,
    offered_fingerprint TEXT,
    offered_at          BIGINT,
    PRIMARY KEY (resource_id, protocol)
);
INSERT INTO host_key_pins (resource_id, protocol, fingerprint, status, decided_by, updated_at, offered_fingerprint, offered_at)
    SELECT h.resource_id, CASE WHEN r.ssh_port IS NULL AND r.rdp_port IS NOT NULL THEN 'rdp' ELSE 'ssh' END,
           h.fingerprint, h.status, h.decided_by, h.updated_at, h.offered_fingerprint, h.offered_at
    FROM host_keys h JOIN resources r ON r.id = h.resource_id;
DROP TABLE host_keys;
