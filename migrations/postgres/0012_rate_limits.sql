-- Rate limit counters shared by every node: one row per (policy and key, fixed window).
-- The key (a policy name with a client address or a client id) is kept only as its SHA-256.
-- UNLOGGED: counters are worth nothing after a crash, and skipping the WAL halves the cost
-- of the one upsert each limited request makes.
CREATE UNLOGGED TABLE rate_counters (
    key_hash     BYTEA NOT NULL,
    window_start BIGINT NOT NULL,  -- Unix seconds
    expires_at   BIGINT NOT NULL,  -- the window's end: swept by the expired-row cleanup
    hits         INTEGER NOT NULL,
    PRIMARY KEY (key_hash, window_start)
);
CREATE INDEX rate_counters_expires ON rate_counters (expires_at);
