-- A leg whose channel the platform did not create (an inbound caller's) keeps its
-- channel's uuid apart from its callSid; NULL: the channel's uuid is the callSid.
ALTER TABLE calls ADD COLUMN channel_uuid TEXT;

-- The agent on a leg of an agent conversation (its offers, its callOut leg): an agent's
-- live legs are found by it.
ALTER TABLE calls ADD COLUMN agent_no TEXT;
CREATE INDEX calls_by_agent ON calls (app_id, agent_no) WHERE agent_no IS NOT NULL;
