-- Inbound numbers (agents' contract §3.3): the operator grants a DID to an account; one
-- application of that account may route it. Revoking the grant removes the route.
CREATE TABLE did_numbers (
    number         TEXT PRIMARY KEY,
    account_sid    TEXT NOT NULL,
    granted_at     BIGINT NOT NULL,
    app_id         TEXT,
    name           TEXT NOT NULL DEFAULT '',
    welcome_prompt TEXT NOT NULL DEFAULT '',
    route          TEXT,
    routed_at      BIGINT,
    updated_at     BIGINT
);
CREATE INDEX did_numbers_by_account ON did_numbers (account_sid, number);
CREATE INDEX did_numbers_by_app ON did_numbers (app_id, number) WHERE app_id IS NOT NULL;
