-- Which apps received a code in which browser session, so ending the session can tell them
-- (OpenID Connect Back-Channel Logout 1.0).
CREATE TABLE session_clients (
    session_hash  BLOB NOT NULL,
    client_id     TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (session_hash, client_id)
);
CREATE INDEX session_clients_expires ON session_clients (expires_at);
