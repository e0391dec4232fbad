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
