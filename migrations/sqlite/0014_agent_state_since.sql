-- When each session entered its current agentState (queues' Live view: `since`; routing:
-- how long an agent has been idle). Sessions from before keep their last change time.
ALTER TABLE agent_sessions ADD COLUMN state_since BIGINT;
UPDATE agent_sessions SET state_since = updated_at;
