-- OpenID Client-Initiated Backchannel Authentication (CIBA Core 1.0): an app asks for a known
-- user, the bot asks that user in their chat, and the app polls (or is pinged) for the answer.
-- Every step may be served by another node, so the whole state of a request is here.
CREATE TABLE ciba_requests (
    request_hash        BYTEA PRIMARY KEY,  -- SHA-256 of the auth_req_id
    client_id           TEXT NOT NULL,
    user_id             BIGINT NOT NULL,   -- the user the hint named
    scope               TEXT NOT NULL,
    binding_message     TEXT,
    status              TEXT NOT NULL,     -- pending, approved, denied, consumed
    approved_user_id    BIGINT,
    auth_time           BIGINT,
    amr                 TEXT,
    interval_secs       BIGINT NOT NULL,   -- grows by 5 with every slow_down
    last_polled_at      BIGINT,           -- Unix milliseconds
    notification_token  TEXT,              -- ping mode: the client's own bearer for its endpoint
    id_seed             BYTEA,          -- ping mode: what the auth_req_id is derived from, with the server's secret
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL
);
CREATE INDEX ciba_requests_expires ON ciba_requests (expires_at);

-- The bot login that asks the user about a CIBA request.
ALTER TABLE bot_logins ADD COLUMN ciba_hash BYTEA;

-- login_hint may name a user by username, in any case.
CREATE INDEX users_username ON users (lower(username));
