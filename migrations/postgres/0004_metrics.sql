-- /metrics counts the callbacks that failed for good; they stay until re-pushed, so the
-- count reads this small index instead of the whole outbox.
CREATE INDEX outbox_failed ON outbox (seq) WHERE state = 'failed';
