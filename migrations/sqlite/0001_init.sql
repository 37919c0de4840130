-- Bearer secrets are stored only as SHA-256 digests (BLOB columns named *_hash).
CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    secret_hash  BLOB,
    settings     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE users (
    telegram_id    INTEGER PRIMARY KEY,
    first_name     TEXT NOT NULL,
    last_name      TEXT,
    username       TEXT,
    photo_url      TEXT,
    language_code  TEXT,
    is_premium     INTEGER NOT NULL DEFAULT 0,
    phone_number   TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE used_proofs (
    proof_hash  BLOB PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX used_proofs_expires ON used_proofs (expires_at);

CREATE TABLE sessions (
    id_hash     BLOB PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    auth_time   INTEGER NOT NULL,
    amr         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE pending_authorizations (
    id_hash     BLOB PRIMARY KEY,
    client_id   TEXT NOT NULL,
    request     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pending_expires ON pending_authorizations (expires_at);

CREATE TABLE consents (
    user_id     INTEGER NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     INTEGER,
    scope       TEXT NOT NULL,
    auth_time   INTEGER NOT NULL,
    amr         TEXT NOT NULL,
    nonce       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX grants_expires ON grants (expires_at);

CREATE TABLE codes (
    code_hash       BLOB PRIMARY KEY,
    grant_id        TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX codes_expires ON codes (expires_at);

CREATE TABLE access_tokens (
    token_hash  BLOB PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     INTEGER,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
