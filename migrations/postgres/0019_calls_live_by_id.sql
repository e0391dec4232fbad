-- Live legs by epoch and id: the journal looks each leg it writes up by (id, epoch) among
-- the live ones; with the epoch alone the plan scanned every live leg of the process.
DROP INDEX calls_live;
CREATE INDEX calls_live ON calls (epoch, id) WHERE end_at IS NULL AND epoch IS NOT NULL;
