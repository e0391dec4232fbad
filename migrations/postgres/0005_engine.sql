-- The conversation engine: fenced ownership of calls (the epoch of the process driving
-- them), accounts' pace and live legs shared by every replica, commands to the replica
-- driving a conversation, and each conversation's snapshot for a takeover.

-- A call belongs to the lease epoch that claimed or took it over; each journal write names
-- the epoch and is refused once another process has taken the call.
ALTER TABLE calls ADD COLUMN epoch BIGINT;
-- Calls left by the previous schema's processes: taken over as orphans (epoch 0 has no lease).
UPDATE calls SET epoch = 0 WHERE state IN ('placing', 'initiated', 'ringing', 'answered');
DROP INDEX calls_unfinished;
ALTER TABLE calls DROP COLUMN owner;
CREATE INDEX calls_live ON calls (epoch) WHERE end_at IS NULL AND epoch IS NOT NULL;

DROP TABLE leases;
CREATE TABLE leases (
    epoch      BIGINT PRIMARY KEY,
    instance   TEXT NOT NULL,
    node_id    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('lease_epoch', 0);

-- Pacing across replicas: the cps bucket (tokens as of pace_at, Unix ms) and the legs
-- being placed or live, both changed in the transactions that change the calls.
ALTER TABLE accounts ADD COLUMN live_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pace_tokens DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pace_at BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET live_calls = (SELECT COUNT(*) FROM calls
    WHERE calls.account_sid = accounts.sid AND calls.state IN ('placing', 'initiated', 'ringing', 'answered'));

ALTER TABLE conversations ADD COLUMN snapshot TEXT;

-- cancelCall / addCall for a conversation driven by another replica.
CREATE TABLE conversation_commands (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    command         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    verdict         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX conversation_commands_pending ON conversation_commands (conversation_id) WHERE state = 'pending';

-- The final SIP response of each leg (the CDR's sipStatus).
ALTER TABLE calls ADD COLUMN sip_status TEXT;
