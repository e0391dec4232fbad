-- Agents' conversations (agents' contract §7.1): the agent a conversation belongs to, so
-- its commands and getState find it.
ALTER TABLE conversations ADD COLUMN agent_no TEXT;
CREATE INDEX conversations_by_agent ON conversations (app_id, agent_no) WHERE agent_no IS NOT NULL;
