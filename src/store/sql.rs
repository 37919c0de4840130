//! The text of every statement, shared by both stores. The statements use `$n` placeholders and
//! only syntax that SQLite (3.35+) and PostgreSQL both accept (`RETURNING`, `ON CONFLICT`), so
//! one text serves both: PostgreSQL reads `$n` as positional parameters, SQLite as named ones
//! (`named_params! {"$1": ...}`). Only text lives here; each store binds and maps rows itself.

/// A code keeps its row this long past expiry so a late second use is still seen as reuse.
pub(crate) const CODE_REUSE_MEMORY_SECS: i64 = 3600;

/// A device code's row outlives its expiry this long, so a late poll still hears
/// `expired_token` (RFC 8628 §3.5) rather than `invalid_grant`.
pub(crate) const DEVICE_CODE_MEMORY_SECS: i64 = 3600;

// Clients and users.

pub const PING: &str = "SELECT 1";
pub const INSERT_CLIENT: &str =
    "INSERT INTO clients (client_id, secret_hash, settings, created_at) VALUES ($1, $2, $3, $4)";
pub const GET_CLIENT: &str =
    "SELECT client_id, secret_hash, settings, created_at FROM clients WHERE client_id = $1";
pub const LIST_CLIENTS: &str = "SELECT client_id, secret_hash, settings, created_at FROM clients ORDER BY created_at, client_id";
pub const UPDATE_CLIENT: &str =
    "UPDATE clients SET secret_hash = $2, settings = $3 WHERE client_id = $1";
pub const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";
/// Whatever a removed app was granted goes with it.
pub const REVOKE_CLIENT_GRANTS: &str =
    "UPDATE grants SET revoked_at = created_at WHERE client_id = $1 AND revoked_at IS NULL";
pub const DELETE_CLIENT_CONSENTS: &str = "DELETE FROM consents WHERE client_id = $1";

pub const GET_USER: &str = "SELECT telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at, group_names \
     FROM users WHERE telegram_id = $1";
pub const SET_USER_GROUPS: &str = "UPDATE users SET group_names = $2 WHERE telegram_id = $1";
/// What saving a user changes of a user already known: shared by the one-row statement here
/// and PostgreSQL's many-row one (`postgres/updates.rs`).
macro_rules! user_saved_over {
    () => {
        " ON CONFLICT (telegram_id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, \
         username = excluded.username, photo_url = excluded.photo_url, \
         language_code = COALESCE(excluded.language_code, users.language_code), \
         is_premium = excluded.is_premium, \
         phone_number = COALESCE(excluded.phone_number, users.phone_number), \
         updated_at = excluded.updated_at"
    };
}
pub(crate) use user_saved_over;

pub const UPSERT_USER: &str = concat!(
    "INSERT INTO users (telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    user_saved_over!(),
    " RETURNING blocked_at"
);
pub const CONSUME_PROOF: &str = "INSERT INTO used_proofs (proof_hash, expires_at) VALUES ($1, $2) ON CONFLICT (proof_hash) DO NOTHING";

// Browser sessions and pending authorizations.

pub const CREATE_SESSION: &str = "INSERT INTO sessions (id_hash, user_id, auth_time, amr, created_at, expires_at, device, place, last_used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const GET_SESSION: &str = "SELECT id_hash, user_id, auth_time, amr, created_at, expires_at, device, place, last_used_at \
     FROM sessions WHERE id_hash = $1 AND expires_at > $2";
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";
pub const RECORD_SESSION_CLIENT: &str = "INSERT INTO session_clients (session_hash, client_id, user_id, expires_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (session_hash, client_id) DO UPDATE SET expires_at = excluded.expires_at";
pub const TAKE_SESSION_CLIENTS: &str =
    "DELETE FROM session_clients WHERE session_hash = $1 RETURNING client_id, user_id";
pub const CREATE_PENDING: &str = "INSERT INTO pending_authorizations (id_hash, client_id, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub const GET_PENDING: &str = "SELECT id_hash, client_id, request, created_at, expires_at FROM pending_authorizations WHERE id_hash = $1 AND expires_at > $2";
pub const UPDATE_PENDING: &str =
    "UPDATE pending_authorizations SET request = $2 WHERE id_hash = $1";
pub const DELETE_PENDING: &str = "DELETE FROM pending_authorizations WHERE id_hash = $1";
pub const GET_CONSENT: &str = "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2";
pub const SAVE_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scope, updated_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at";

// Grants, codes and tokens.

pub const INSERT_GRANT: &str = "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at, session_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const GET_GRANT: &str = "SELECT id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at, session_hash FROM grants WHERE id = $1";
pub const GET_LIVE_GRANT: &str = "SELECT id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at, session_hash FROM grants \
     WHERE id = $1 AND revoked_at IS NULL";
pub const EXTEND_GRANT: &str =
    "UPDATE grants SET expires_at = $2 WHERE id = $1 AND expires_at < $2";
pub const REVOKE_GRANT: &str =
    "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub const INSERT_CODE: &str = "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5)";
/// Single use: only the first update finds `used_at` empty.
pub const REDEEM_CODE: &str = "UPDATE codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
     AND EXISTS (SELECT 1 FROM grants g WHERE g.id = codes.grant_id AND g.client_id = $3 AND g.revoked_at IS NULL) \
     RETURNING code_hash, grant_id, redirect_uri, code_challenge, expires_at";
pub const CODE_ALREADY_USED: &str = "SELECT c.grant_id FROM codes c JOIN grants g ON g.id = c.grant_id \
     WHERE c.code_hash = $1 AND c.used_at IS NOT NULL AND g.client_id = $2";
pub const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const GET_ACCESS_TOKEN: &str = "SELECT a.token_hash, a.grant_id, a.client_id, a.user_id, a.scope, a.created_at, a.expires_at, \
     a.revoked_at AS token_revoked_at, g.id AS live_grant, g.revoked_at \
     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = $1";
pub const REVOKE_ACCESS_TOKEN: &str = "UPDATE access_tokens SET revoked_at = $3 WHERE token_hash = $1 AND client_id = $2 AND revoked_at IS NULL";
pub const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
pub const GET_REFRESH_TOKEN: &str = "SELECT r.token_hash, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, \
     g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.nonce, g.created_at, g.revoked_at, g.expires_at, g.session_hash \
     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1";
/// Single use: only the first update finds `used_at` empty.
pub const USE_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
     AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.client_id = $3) RETURNING grant_id";
pub const REFRESH_TOKEN_SEEN: &str = "SELECT r.grant_id, r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
     WHERE r.token_hash = $1 AND g.client_id = $2";

// Logins through Telegram's OpenID Connect provider.

pub const INSERT_UPSTREAM_LOGIN: &str = "INSERT INTO upstream_logins (state_hash, binding_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)";
/// Single use: only the first update finds `used_at` empty.
pub const TAKE_UPSTREAM_LOGIN: &str = "UPDATE upstream_logins SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL AND expires_at > $2 \
     RETURNING state_hash, binding_hash, created_at, expires_at";

// Bot logins and device codes (flows.rs): every change of state is one conditional UPDATE.

macro_rules! bot_login_columns {
    () => {
        "id, payload_hash, client_id, pending_hash, browser_hash, device_hash, \
         status, telegram_id, identity, created_at, expires_at, match_code, requester, answer, ciba_hash"
    };
}

macro_rules! device_columns {
    () => {
        "device_code_hash, user_code_hash, client_id, scope, status, user_id, \
         auth_time, amr, interval_secs, last_polled_at, created_at, expires_at"
    };
}

pub const INSERT_BOT_LOGIN: &str = concat!(
    "INSERT INTO bot_logins (",
    bot_login_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
pub const GET_BOT_LOGIN: &str = concat!(
    "SELECT ",
    bot_login_columns!(),
    " FROM bot_logins WHERE id = $1"
);
pub const START_BOT_LOGIN: &str = concat!(
    "UPDATE bot_logins SET status = 'started', telegram_id = $2 \
     WHERE payload_hash = $1 AND expires_at > $3 \
     AND (status = 'pending' OR (status = 'started' AND telegram_id = $2)) RETURNING ",
    bot_login_columns!()
);
pub const DECIDE_BOT_LOGIN: &str = concat!(
    "UPDATE bot_logins SET status = $3, identity = $4, expires_at = $6, answer = $7 \
     WHERE id = $1 AND telegram_id = $2 AND status = 'started' AND expires_at > $5 RETURNING ",
    bot_login_columns!()
);
/// RETURNING shows the new status; the decision is read back from `identity`.
pub const FINISH_BOT_LOGIN: &str = concat!(
    "UPDATE bot_logins SET status = 'consumed' \
     WHERE id = $1 AND browser_hash = $2 AND pending_hash = $3 \
     AND status IN ('approved', 'denied') AND expires_at > $4 RETURNING ",
    bot_login_columns!()
);

pub const INSERT_DEVICE_CODE: &str = concat!(
    "INSERT INTO device_codes (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);
pub const FIND_DEVICE_CODE: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM device_codes WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2"
);
pub const DECIDE_DEVICE_CODE: &str = concat!(
    "UPDATE device_codes SET status = $2, user_id = $3, auth_time = $4, amr = $5 \
     WHERE device_code_hash = $1 AND status = 'pending' AND expires_at > $6 RETURNING ",
    device_columns!()
);
pub const GET_DEVICE_CODE: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM device_codes WHERE device_code_hash = $1 AND client_id = $2"
);
/// A poll in time: at least the interval since the last one. `last_polled_at` and `$2` are
/// Unix milliseconds, so a poll a fraction of a second early is seen.
pub const POLL_DEVICE_CODE: &str = concat!(
    "UPDATE device_codes SET last_polled_at = $2 WHERE device_code_hash = $1 \
     AND (last_polled_at IS NULL OR $2 - last_polled_at >= interval_secs * 1000) RETURNING ",
    device_columns!()
);
/// Too soon: the interval grows by 5 seconds for this and every later poll (RFC 8628 §3.5),
/// and the clock restarts from this poll.
pub const SLOW_DOWN_DEVICE_CODE: &str = "UPDATE device_codes SET last_polled_at = $2, interval_secs = interval_secs + 5 \
     WHERE device_code_hash = $1 RETURNING interval_secs";
pub const CONSUME_DEVICE_CODE: &str = concat!(
    "UPDATE device_codes SET status = 'consumed' \
     WHERE device_code_hash = $1 AND client_id = $2 AND status = 'approved' AND expires_at > $3 RETURNING ",
    device_columns!()
);

macro_rules! ciba_columns {
    () => {
        "request_hash, client_id, user_id, scope, binding_message, status, approved_user_id, \
         auth_time, amr, interval_secs, last_polled_at, notification_token, id_seed, created_at, \
         expires_at"
    };
}

pub const INSERT_CIBA_REQUEST: &str = concat!(
    "INSERT INTO ciba_requests (",
    ciba_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
pub const DECIDE_CIBA_REQUEST: &str = concat!(
    "UPDATE ciba_requests SET status = $2, approved_user_id = $3, auth_time = $4, amr = $5 \
     WHERE request_hash = $1 AND status = 'pending' AND expires_at > $6 RETURNING ",
    ciba_columns!()
);
pub const GET_CIBA_REQUEST: &str = concat!(
    "SELECT ",
    ciba_columns!(),
    " FROM ciba_requests WHERE request_hash = $1 AND client_id = $2"
);
/// As for device codes: a poll in time is at least the interval (in milliseconds) after the
/// last one.
pub const POLL_CIBA_REQUEST: &str = concat!(
    "UPDATE ciba_requests SET last_polled_at = $2 WHERE request_hash = $1 \
     AND (last_polled_at IS NULL OR $2 - last_polled_at >= interval_secs * 1000) RETURNING ",
    ciba_columns!()
);
/// Too soon: the interval grows by 5 seconds (CIBA §11, as RFC 8628 §3.5).
pub const SLOW_DOWN_CIBA_REQUEST: &str = "UPDATE ciba_requests SET last_polled_at = $2, interval_secs = interval_secs + 5 \
     WHERE request_hash = $1 RETURNING interval_secs";
pub const CONSUME_CIBA_REQUEST: &str = concat!(
    "UPDATE ciba_requests SET status = 'consumed' \
     WHERE request_hash = $1 AND client_id = $2 AND status = 'approved' AND expires_at > $3 RETURNING ",
    ciba_columns!()
);
/// Usernames move between accounts: the one who had it most recently.
pub const FIND_USER_BY_USERNAME: &str = "SELECT telegram_id FROM users WHERE lower(username) = lower($1) \
     ORDER BY updated_at DESC, telegram_id LIMIT 1";

pub const CLIENT_USER_IDS: &str = "SELECT user_id FROM consents WHERE client_id = $1 \
     UNION SELECT user_id FROM grants WHERE client_id = $1 AND user_id IS NOT NULL LIMIT $2";

/// Most rows one statement of the expired-row sweep deletes on PostgreSQL. One unbounded
/// DELETE per table made one transaction of the whole table's garbage. A batch of this many
/// takes a few milliseconds, and a million rows are still only a thousand statements.
pub const SWEEP_BATCH_POSTGRES: i64 = 1000;
/// The same on SQLite, smaller: a batch holds SQLite's only writer, and every write of every
/// request waits behind it (one unbounded DELETE of a million rows: seconds). In a table of
/// millions of rows each deleted row with a random key touches its own pages, so a batch of
/// 1,000 held the writer for tens of milliseconds and doubled the p99 of the requests
/// meanwhile (bench/README.md, "The same speed as the data grows"). With the same rest after
/// each batch, smaller batches delete as many rows a second.
pub const SWEEP_BATCH_SQLITE: i64 = 200;

/// One table's sweep, as each database writes it: a statement that deletes at most `$2` of
/// the rows whose expiry is before `$1`, found through the index on that column.
pub struct Sweep {
    /// By `rowid` (no table is `WITHOUT ROWID`).
    pub sqlite: &'static str,
    /// By `ctid`, the address of the row version the same statement just read. The `ORDER BY`
    /// makes the planner walk the index: without it, it scanned the table from its start, where
    /// the rows of earlier batches lie dead until a vacuum, to be read again by every batch.
    pub postgres: &'static str,
}

macro_rules! sweep {
    ($table:literal, $column:literal) => {
        Sweep {
            sqlite: concat!(
                "DELETE FROM ",
                $table,
                " WHERE rowid IN (SELECT rowid FROM ",
                $table,
                " WHERE ",
                $column,
                " < $1 LIMIT $2)"
            ),
            postgres: concat!(
                "DELETE FROM ",
                $table,
                " WHERE ctid = ANY(ARRAY(SELECT ctid FROM ",
                $table,
                " WHERE ",
                $column,
                " < $1 ORDER BY ",
                $column,
                " LIMIT $2))"
            ),
        }
    };
}

/// The sweep of expired rows: each table's statements with how long its rows outlive their
/// expiry.
pub const DELETE_EXPIRED: [(Sweep, i64); 13] = [
    (sweep!("used_proofs", "expires_at"), 0),
    (sweep!("bot_logins", "expires_at"), 0),
    (
        sweep!("device_codes", "expires_at"),
        DEVICE_CODE_MEMORY_SECS,
    ),
    (
        sweep!("ciba_requests", "expires_at"),
        DEVICE_CODE_MEMORY_SECS,
    ),
    (sweep!("upstream_logins", "expires_at"), 0),
    (sweep!("sessions", "expires_at"), 0),
    (sweep!("admin_sessions", "expires_at"), 0),
    (sweep!("session_clients", "expires_at"), 0),
    (sweep!("pending_authorizations", "expires_at"), 0),
    (sweep!("codes", "expires_at"), CODE_REUSE_MEMORY_SECS),
    (sweep!("access_tokens", "expires_at"), 0),
    (sweep!("refresh_tokens", "expires_at"), 0),
    (sweep!("grants", "expires_at"), CODE_REUSE_MEMORY_SECS),
];
/// Audit entries past their retention (`at` in milliseconds).
pub const SWEEP_AUDIT_LOG: Sweep = sweep!("audit_log", "at");
/// Rate limit windows that have ended (PostgreSQL only: SQLite counts in memory).
pub const SWEEP_RATE_COUNTERS: Sweep = sweep!("rate_counters", "expires_at");

// What users manage themselves (account.rs).

/// Every consent, live grant and live access token of a user, one row each.
pub const LIST_USER_APPS: &str = "SELECT client_id, scope, updated_at AS used_at, 1 AS consented FROM consents WHERE user_id = $1 \
     UNION ALL SELECT client_id, scope, created_at AS used_at, 0 AS consented FROM grants \
     WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
     UNION ALL SELECT a.client_id, a.scope, a.created_at AS used_at, 0 AS consented FROM access_tokens a \
     JOIN grants g ON g.id = a.grant_id \
     WHERE a.user_id = $1 AND a.revoked_at IS NULL AND g.revoked_at IS NULL AND a.expires_at > $2";
pub const DELETE_USER_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";
pub const REVOKE_USER_GRANTS: &str = "UPDATE grants SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL";
pub const REVOKE_USER_ACCESS_TOKENS: &str = "UPDATE access_tokens SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL";
pub const LIST_USER_SESSIONS: &str = "SELECT id_hash, user_id, auth_time, amr, created_at, expires_at, device, place, last_used_at \
     FROM sessions WHERE user_id = $1 AND expires_at > $2 \
     ORDER BY COALESCE(last_used_at, created_at) DESC, created_at DESC";
pub const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $2 WHERE id_hash = $1";
pub const REVOKE_SESSION_GRANTS: &str = "UPDATE grants SET revoked_at = $3 \
     WHERE user_id = $1 AND session_hash = $2 AND revoked_at IS NULL RETURNING client_id";
pub const GET_LOGIN_ALERTS: &str =
    "SELECT login_alerts, bot_chat_since FROM users WHERE telegram_id = $1";
pub const SET_LOGIN_ALERTS: &str = "UPDATE users SET login_alerts = $2 WHERE telegram_id = $1";
pub const NOTE_BOT_CHAT_LOGIN: &str =
    "UPDATE users SET bot_chat_since = $2 WHERE telegram_id = $1 AND bot_chat_since IS NULL";
