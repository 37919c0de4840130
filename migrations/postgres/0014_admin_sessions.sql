-- Sessions of the admin desk (/admin): only the SHA-256 of the cookie's value is kept. A
-- session ends after `admin.idle_timeout_secs` without a request, and at `expires_at`.
CREATE TABLE admin_sessions (
    id_hash      BYTEA PRIMARY KEY,
    telegram_id  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,   -- Unix seconds
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);
CREATE INDEX admin_sessions_telegram_id ON admin_sessions (telegram_id);
