-- The orchestrator: leg timings and ownership, CDRs, the callback outbox, replica leases.

-- Which process drives the leg (its instance id) and on which media node it lives;
-- timings are Unix milliseconds on the media server's clock.
ALTER TABLE calls ADD COLUMN owner TEXT;
ALTER TABLE calls ADD COLUMN node TEXT;
ALTER TABLE calls ADD COLUMN start_at INTEGER;
ALTER TABLE calls ADD COLUMN ring_at INTEGER;
ALTER TABLE calls ADD COLUMN answer_at INTEGER;
ALTER TABLE calls ADD COLUMN end_at INTEGER;
ALTER TABLE calls ADD COLUMN hangup_cause TEXT;
ALTER TABLE calls ADD COLUMN inputkey TEXT;
CREATE INDEX calls_queued ON calls (account_sid, created_at, id) WHERE state = 'queued';
CREATE INDEX calls_unfinished ON calls (account_sid) WHERE state IN ('placing', 'initiated', 'ringing', 'answered');

ALTER TABLE conversations ADD COLUMN recording_url TEXT;
ALTER TABLE conversations ADD COLUMN recording_ms INTEGER;

-- One immutable record per notice/captcha call or conversation, as pushed (§5, §6.2).
CREATE TABLE cdrs (
    id          TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    start_time  INTEGER NOT NULL,
    to_number   TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX cdrs_by_time ON cdrs (account_sid, start_time, id);

-- Callbacks to send; rows of one ordering key go out in seq order.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL UNIQUE,
    account_sid     TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    target_url      TEXT NOT NULL,
    body            TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_by_key ON outbox (ordering_key, seq);

-- Live orchestrator processes; a process whose lease expired has its calls taken over.
CREATE TABLE leases (
    instance   TEXT PRIMARY KEY,
    node_id    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
