-- Every leg's number of each CDR, so the CDR query's `to` finds a conversation by its
-- callee or an added party as well as by its caller.
CREATE TABLE cdr_numbers (
    account_sid TEXT NOT NULL,
    number      TEXT NOT NULL,
    start_time  BIGINT NOT NULL,
    cdr_id      TEXT NOT NULL,
    PRIMARY KEY (account_sid, number, start_time, cdr_id)
);

INSERT OR IGNORE INTO cdr_numbers (account_sid, number, start_time, cdr_id)
SELECT account_sid, to_number, start_time, id FROM cdrs;

INSERT OR IGNORE INTO cdr_numbers (account_sid, number, start_time, cdr_id)
SELECT c.account_sid, l.to_number, c.start_time, c.id
FROM cdrs c JOIN calls l ON l.conversation_id = c.id;

-- The query's `to` reads cdr_numbers now.
DROP INDEX cdrs_by_callee;
