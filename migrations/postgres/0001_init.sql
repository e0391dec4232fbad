-- voicepaas schema, PostgreSQL. Instants are Unix milliseconds (BIGINT); JSON is TEXT.

CREATE TABLE server_keys (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    sid                  TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    token_hash           TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    cps                  BIGINT NOT NULL DEFAULT 10,
    max_concurrent_calls BIGINT NOT NULL DEFAULT 100,
    max_queued_calls     BIGINT NOT NULL DEFAULT 10000,
    answer_timeout       BIGINT NOT NULL DEFAULT 45,
    queued_calls         BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL
);

CREATE TABLE applications (
    app_id              TEXT PRIMARY KEY,
    account_sid         TEXT NOT NULL REFERENCES accounts (sid),
    name                TEXT NOT NULL,
    notify_url          TEXT,
    status_url          TEXT,
    cdr_url             TEXT,
    cdr_feed_url        TEXT,
    cdr_batch_size      BIGINT NOT NULL DEFAULT 100,
    cdr_batch_window_ms BIGINT NOT NULL DEFAULT 1000,
    allowed_caller_ids  TEXT NOT NULL DEFAULT '[]',
    signing_secret      TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX applications_by_account ON applications (account_sid);

CREATE TABLE prompts (
    app_id      TEXT NOT NULL REFERENCES applications (app_id),
    name        TEXT NOT NULL,
    audio       BYTEA NOT NULL,
    size_bytes  BIGINT NOT NULL,
    sample_rate BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE idempotency_keys (
    account_sid  TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (account_sid, idem_key)
);

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    state       TEXT NOT NULL,
    bye_type    BIGINT,
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT
);

-- One row per call leg, written when its request is accepted: the leg carries everything
-- needed to place it (request id, caller id, userdata, and its script as JSON in params).
CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    account_sid     TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    conversation_id TEXT,
    leg_seq         BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,
    to_number       TEXT NOT NULL,
    from_number     TEXT,
    userdata        TEXT,
    params          TEXT NOT NULL,
    cause           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX calls_captcha_by_callee ON calls (account_sid, to_number, created_at) WHERE kind = 'captcha';
CREATE INDEX calls_by_conversation ON calls (conversation_id) WHERE conversation_id IS NOT NULL;
