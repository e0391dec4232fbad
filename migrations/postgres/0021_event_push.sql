-- The eventUrl push of agent events: each ordering key (an agent, or a conversation's
-- events that name no agent) numbers its events from 1 (their `seq`, astercc's `eventid`).
CREATE TABLE event_push_seqs (
    ordering_key TEXT PRIMARY KEY,
    last_seq     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
-- Retention drops the counters of conversations long over.
CREATE INDEX event_push_seqs_updated ON event_push_seqs (updated_at);
