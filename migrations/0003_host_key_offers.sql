-- Issue 3: when a target presents a key that differs from its pin, the connection is refused
-- and the presented key is kept here, so an administrator can compare it with the pin and
-- accept exactly that key (instead of forgetting the pin and trusting whatever comes next).
ALTER TABLE host_keys ADD COLUMN offered_fingerprint TEXT;
ALTER TABLE host_keys ADD COLUMN offered_at BIGINT;
