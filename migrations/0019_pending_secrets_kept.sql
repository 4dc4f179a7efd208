-- A pending secret is never deleted (issue 29): one the target did not take goes to the
-- password history as discarded (note says why); an open one is settled again with back-off
-- (attempts, next_check_at, last_message), not only at start-up; and the commit compares the
-- account's secret with the one the job started from (started_from), so a change made in the
-- vault during a rotation is never overwritten.
ALTER TABLE password_history ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_secrets ADD COLUMN started_from TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_secrets ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pending_secrets ADD COLUMN next_check_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pending_secrets ADD COLUMN last_message TEXT NOT NULL DEFAULT '';
