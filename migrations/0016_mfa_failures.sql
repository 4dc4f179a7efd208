-- Wrong second-factor codes are counted (issue 29): per pending login, and per user across
-- pending logins (a password success does not reset it; a right code does). Five of either
-- end the pending login and lock the user for the lockout time.
ALTER TABLE web_sessions ADD COLUMN mfa_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_failures BIGINT NOT NULL DEFAULT 0;
