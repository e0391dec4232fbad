-- Inbound calls (agents' contract §9, §11.1): every replica sees each DID channel park;
-- the one whose insert lands handles it. Kept a day, then purged.
CREATE TABLE inbound_claims (
    channel_uuid TEXT PRIMARY KEY,
    node         TEXT NOT NULL,
    did          TEXT NOT NULL,
    caller       TEXT NOT NULL,
    claimed_by   TEXT NOT NULL,
    claimed_at   BIGINT NOT NULL
);
CREATE INDEX inbound_claims_by_time ON inbound_claims (claimed_at);
