-- What happened, who did it, from where: logins and their refusals, consents, token issuance
-- and revocation, admin actions, webhook authentication failures. Never a secret: only ids
-- and the first characters of hashes.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,  -- Unix milliseconds
    event       TEXT NOT NULL,     -- e.g. login, token.issued, consent.granted, admin.client.created
    result      TEXT NOT NULL,     -- ok, refused, failed
    user_id     INTEGER,
    client_id   TEXT,
    actor       TEXT,              -- admin key id or admin name, for admin actions
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    detail      TEXT               -- JSON object: method, reason, rule, before/after
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE INDEX audit_log_client ON audit_log (client_id, id);
