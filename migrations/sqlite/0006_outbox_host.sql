-- The host each callback goes to, so the dispatcher can leave out hosts that already have
-- their whole in-flight budget (a slow receiver must not hold back the others). Rows from
-- before this column have none: the dispatcher reads their host from the URL.
ALTER TABLE outbox ADD COLUMN target_host TEXT;

-- Retention (the periodic purge) finds expired rows by these instead of scanning.
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
