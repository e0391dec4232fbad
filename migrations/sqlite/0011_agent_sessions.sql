-- Agent sessions (login to logout), their event logs, the socket attached to each agent
-- and failed password attempts.

CREATE TABLE agent_sessions (
    session_sid TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    agent_no    TEXT NOT NULL,
    -- The state machine's session (JSON).
    session     TEXT NOT NULL,
    agent_state TEXT NOT NULL,
    last_seq    BIGINT NOT NULL,
    -- The session's next timer (wrapup end, grace end), Unix ms.
    due_at      BIGINT,
    ended_at    BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX agent_sessions_live ON agent_sessions (app_id, agent_no) WHERE ended_at IS NULL;
CREATE INDEX agent_sessions_due ON agent_sessions (due_at) WHERE ended_at IS NULL AND due_at IS NOT NULL;

-- The last 500 events of each session, as sent (unmasked).
CREATE TABLE agent_events (
    session_sid TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    frame       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_sid, seq)
);

-- The socket attached to each agent (the latest authentication wins) and the process
-- holding it.
CREATE TABLE agent_sockets (
    app_id    TEXT NOT NULL,
    agent_no  TEXT NOT NULL,
    socket_id TEXT NOT NULL,
    holder    TEXT NOT NULL,
    PRIMARY KEY (app_id, agent_no)
);
CREATE INDEX agent_sockets_by_holder ON agent_sockets (holder);

-- When each process holding sockets last vouched for them (one row per process).
CREATE TABLE agent_holders (
    holder  TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

-- Failed password authentications per agent and client address (throttling).
CREATE TABLE agent_auth_failures (
    app_id       TEXT NOT NULL,
    agent_no     TEXT NOT NULL,
    address      TEXT NOT NULL,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    PRIMARY KEY (app_id, agent_no, address)
);
