-- The callers waiting in queues (agents' contract §3.2 Live view, §8.4): one row per
-- conversation while its caller waits, written with the conversation's own steps.
CREATE TABLE queue_waiting (
    conversation_id TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    queue_sid       TEXT NOT NULL,
    call_sid        TEXT NOT NULL,
    user_number     TEXT NOT NULL,
    join_type       BIGINT NOT NULL,
    join_at         BIGINT NOT NULL
);
CREATE INDEX queue_waiting_by_queue ON queue_waiting (app_id, queue_sid, join_at);
