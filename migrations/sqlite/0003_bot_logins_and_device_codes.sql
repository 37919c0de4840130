-- Logins confirmed in the bot chat (t.me/<bot>?start=<payload>) and device codes (RFC 8628).
-- Both wait for a person on another screen; any node may serve any step, so all their state is here.

CREATE TABLE bot_logins (
    id            TEXT PRIMARY KEY,      -- public handle: button callback_data, the browser's status checks
    payload_hash  BLOB NOT NULL UNIQUE,  -- SHA-256 of the start payload
    client_id     TEXT NOT NULL,
    pending_hash  BLOB,                  -- a browser login: the pending authorization it serves
    browser_hash  BLOB,                  -- and SHA-256 of the cookie that binds it to that browser
    device_hash   BLOB,                  -- or a device confirmation: the device code it approves
    status        TEXT NOT NULL,         -- pending, started, approved, denied, consumed
    telegram_id   INTEGER,               -- who sent /start; only they may answer
    identity      TEXT,                  -- the approved TelegramIdentity, JSON
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX bot_logins_expires ON bot_logins (expires_at);

CREATE TABLE device_codes (
    device_code_hash  BLOB PRIMARY KEY,
    user_code_hash    BLOB NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    status            TEXT NOT NULL,     -- pending, approved, denied, consumed
    user_id           INTEGER,
    auth_time         INTEGER,
    amr               TEXT,
    interval_secs     INTEGER NOT NULL,  -- grows by 5 with every slow_down (RFC 8628 §3.5)
    last_polled_at    INTEGER,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
