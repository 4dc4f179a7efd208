-- Rotation over a terminal (issue 9): besides 'postgres', a resource's method may be
-- 'passwd' (each account changes its own), 'sudo' or 'su' (through the privileged account,
-- chpasswd) or 'script' (an administrator's prompt/answer script, e.g. a network device's
-- config mode), stored here as JSON. The database fields are unused by terminal methods.
ALTER TABLE resource_rotation ADD COLUMN script TEXT;
