-- Due callbacks per host, so a claim takes each host's share by an index probe instead of
-- walking past the backlog of hosts that have their whole budget in flight.
CREATE INDEX outbox_due_by_host ON outbox (target_host, next_attempt_at, seq) WHERE state = 'pending' AND kind <> 'feed';
