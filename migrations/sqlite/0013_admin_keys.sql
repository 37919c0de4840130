-- Keys for the admin API. The key itself is shown once; only its SHA-256 is kept.
CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,     -- `read` or `write`
    key_hash     BLOB NOT NULL UNIQUE,
    allow_ips    TEXT NOT NULL,     -- a JSON array of CIDRs; empty: any address
    created_at   BIGINT NOT NULL,   -- Unix seconds
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

-- A blocked user passes no gate; set and cleared by an admin.
ALTER TABLE users ADD COLUMN blocked_at BIGINT;
