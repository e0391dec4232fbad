-- A leg's state changes (ringing, answered, …) rewrite its row without touching any index
-- (PostgreSQL's heap-only updates): queued legs are indexed by what marks them besides
-- their state — no epoch yet, not ended — and the call tables keep room on each page for
-- the new row versions, which page pruning then clears without waiting for a vacuum.
ALTER TABLE calls SET (fillfactor = 70);
ALTER TABLE conversations SET (fillfactor = 70);
DROP INDEX calls_queued;
CREATE INDEX calls_queued ON calls (account_sid, created_at, id) WHERE epoch IS NULL AND end_at IS NULL;
