-- The contact center's management data: CTI settings of an application, agents and
-- their queue memberships, agent tokens, caller-id pools and queues.

ALTER TABLE applications ADD COLUMN cti_event_url TEXT;
ALTER TABLE applications ADD COLUMN cti_event_format TEXT NOT NULL DEFAULT 'json';
ALTER TABLE applications ADD COLUMN cti_encrypt_number BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE applications ADD COLUMN cti_record_agent_calls BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE applications ADD COLUMN cti_agent_ring_timeout BIGINT NOT NULL DEFAULT 20;
ALTER TABLE applications ADD COLUMN cti_max_call_duration BIGINT NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN cti_music_on_hold TEXT NOT NULL DEFAULT '';
ALTER TABLE applications ADD COLUMN cti_allowed_origins TEXT NOT NULL DEFAULT '[]';

CREATE TABLE agents (
    app_id             TEXT NOT NULL,
    agent_no           TEXT NOT NULL,
    name               TEXT NOT NULL,
    pwd_hash           TEXT NOT NULL,
    role               TEXT NOT NULL,
    phone_type         BIGINT NOT NULL,
    pstn_number        TEXT NOT NULL,
    sip_number         TEXT NOT NULL UNIQUE,
    sip_pwd            TEXT NOT NULL,
    wrapup_time        BIGINT NOT NULL,
    auto_answer        BOOLEAN NOT NULL,
    caller_id_pool_sid TEXT NOT NULL,
    enabled            BOOLEAN NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (app_id, agent_no)
);
CREATE INDEX agents_by_pool ON agents (caller_id_pool_sid) WHERE caller_id_pool_sid <> '';

-- The last sipNumber handed out from VOICEPAAS_SIP_NUMBER_BASE (numbers are never reused).
CREATE TABLE sip_number_seq (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO sip_number_seq (id, last) VALUES (1, 0);

CREATE TABLE agent_queues (
    app_id      TEXT NOT NULL,
    agent_no    TEXT NOT NULL,
    queue_sid   TEXT NOT NULL,
    skill_level BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (app_id, agent_no, queue_sid)
);
CREATE INDEX agent_queues_by_queue ON agent_queues (queue_sid, agent_no);

CREATE TABLE agent_tokens (
    token_hash TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    agent_no   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX agent_tokens_by_agent ON agent_tokens (app_id, agent_no);

CREATE TABLE caller_id_pools (
    pool_sid   TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    name       TEXT NOT NULL,
    numbers    TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    next_index BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX caller_id_pools_by_app ON caller_id_pools (app_id, pool_sid);

CREATE TABLE queues (
    queue_sid               TEXT PRIMARY KEY,
    app_id                  TEXT NOT NULL,
    name                    TEXT NOT NULL,
    strategy                TEXT NOT NULL,
    ring_timeout            BIGINT NOT NULL,
    last_agent_routing      BOOLEAN NOT NULL,
    last_agent_window_hours BIGINT NOT NULL,
    max_wait_seconds        BIGINT NOT NULL,
    overflow                TEXT NOT NULL,
    music_on_hold           TEXT NOT NULL,
    announce                TEXT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX queues_by_app ON queues (app_id, queue_sid);
