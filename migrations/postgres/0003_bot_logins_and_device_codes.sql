-- Logins confirmed in the bot chat (t.me/<bot>?start=<payload>) and device codes (RFC 8628).
-- Both wait for a person on another screen; any node may serve any step, so all their state is here.

CREATE TABLE bot_logins (
    id            TEXT PRIMARY KEY,      -- public handle: button callback_data, the browser's status checks
    payload_hash  BYTEA NOT NULL UNIQUE,  -- SHA-256 of the start payload
    client_id     TEXT NOT NULL,
    pending_hash  BYTEA,                  -- a browser login: the pending authorization it serves
    browser_hash  BYTEA,                  -- and SHA-256 of the cookie that binds it to that browser
    device_hash   BYTEA,                  -- or a device confirmation: the device code it approves
    status        TEXT NOT NULL,         -- pending, started, approved, denied, consumed
    telegram_id   BIGINT,               -- who sent /start; only they may answer
    identity      TEXT,                  -- the approved TelegramIdentity, JSON
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX bot_logins_expires ON bot_logins (expires_at);

CREATE TABLE device_codes (
    device_code_hash  BYTEA PRIMARY KEY,
    user_code_hash    BYTEA NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    status            TEXT NOT NULL,     -- pending, approved, denied, consumed
    user_id           BIGINT,
    auth_time         BIGINT,
    amr               TEXT,
    interval_secs     BIGINT NOT NULL,  -- grows by 5 with every slow_down (RFC 8628 §3.5)
    last_polled_at    BIGINT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
