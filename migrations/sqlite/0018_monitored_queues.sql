-- The queues a supervisor's session monitors (agents' contract §7.2 monitorQueues): a JSON
-- array of queueSids, `["*"]` for all of them, NULL for none; kept across reconnects until
-- unmonitorQueues or the session's end.
ALTER TABLE agent_sessions ADD COLUMN monitored_queues TEXT;
