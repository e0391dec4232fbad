-- Webhook deliveries: claims of outbox rows and every attempt.

ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
-- Rows of the batched CDR feed are sent together; the batch id is their webhook-id.
ALTER TABLE outbox ADD COLUMN batch_id TEXT;
ALTER TABLE outbox ADD COLUMN finished_at INTEGER;

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    response    TEXT
);
CREATE INDEX delivery_attempts_by_webhook ON delivery_attempts (webhook_id, attempt);
CREATE INDEX outbox_feed ON outbox (app_id, seq) WHERE kind = 'feed' AND state = 'pending';

-- The CDR query (§8): a time range per account, optionally narrowed by callee, application
-- or kind, paged by (start_time, id); the deliveries list per account, newest first.
CREATE INDEX cdrs_by_callee ON cdrs (account_sid, to_number, start_time, id);
CREATE INDEX cdrs_by_app ON cdrs (account_sid, app_id, start_time, id);
CREATE INDEX cdrs_by_kind ON cdrs (account_sid, kind, start_time, id);
CREATE INDEX outbox_by_account ON outbox (account_sid, state, seq);
CREATE INDEX outbox_by_account_all ON outbox (account_sid, seq);
CREATE INDEX outbox_batch ON outbox (batch_id) WHERE batch_id IS NOT NULL;

-- Claims take due rows in (next_attempt_at, seq) order: the index gives that order, so a
-- claim reads a few rows instead of sorting every pending one.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE state = 'pending';
