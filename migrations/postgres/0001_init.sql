-- Bearer secrets are stored only as SHA-256 digests (BYTEA columns named *_hash).
CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    secret_hash  BYTEA,
    settings     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE users (
    telegram_id    BIGINT PRIMARY KEY,
    first_name     TEXT NOT NULL,
    last_name      TEXT,
    username       TEXT,
    photo_url      TEXT,
    language_code  TEXT,
    is_premium     BOOLEAN NOT NULL DEFAULT FALSE,
    phone_number   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE used_proofs (
    proof_hash  BYTEA PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX used_proofs_expires ON used_proofs (expires_at);

CREATE TABLE sessions (
    id_hash     BYTEA PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE pending_authorizations (
    id_hash     BYTEA PRIMARY KEY,
    client_id   TEXT NOT NULL,
    request     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX pending_expires ON pending_authorizations (expires_at);

CREATE TABLE consents (
    user_id     BIGINT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     BIGINT,
    scope       TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    nonce       TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX grants_expires ON grants (expires_at);

CREATE TABLE codes (
    code_hash       BYTEA PRIMARY KEY,
    grant_id        TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX codes_expires ON codes (expires_at);

CREATE TABLE access_tokens (
    token_hash  BYTEA PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     BIGINT,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
