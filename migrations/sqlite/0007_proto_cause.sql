-- The protocol's own cause of a leg's end (FreeSWITCH's proto_specific_hangup_cause,
-- e.g. sip:486), reported in the CDR leg as protoCause.
ALTER TABLE calls ADD COLUMN proto_cause TEXT;
