-- Logins started towards Telegram's OpenID Connect provider: `state` is single-use and bound
-- to a browser cookie. Only SHA-256 digests are stored; the flow's secrets stay in the cookie.
CREATE TABLE upstream_logins (
    state_hash    BYTEA PRIMARY KEY,
    binding_hash  BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX upstream_logins_expires ON upstream_logins (expires_at);
