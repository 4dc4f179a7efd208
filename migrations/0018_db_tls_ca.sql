-- Database rotation verifies the server's TLS certificate (issue 29): 'require' now checks it
-- against a CA, 'verify_full' (the default for new settings) the host name too. db_ca holds
-- the CA certificate(s) to trust, PEM; NULL: the usual public roots.
ALTER TABLE resource_rotation ADD COLUMN db_ca TEXT;
