-- Queued legs are indexed by what marks them besides their state — no epoch yet, not
-- ended — as on PostgreSQL, where a state change then touches no index.
DROP INDEX calls_queued;
CREATE INDEX calls_queued ON calls (account_sid, created_at, id) WHERE epoch IS NULL AND end_at IS NULL;
