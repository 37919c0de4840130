//! Flows that wait for a person on another screen: logins confirmed in the bot chat and device
//! codes (RFC 8628). One side polls, the other decides, possibly through another node, so every
//! change of state is one conditional `UPDATE ... RETURNING` that at most one caller can win.

use async_trait::async_trait;

use super::{StoreError, StoreResult};

/// Where a bot login stands. `Started` means a Telegram user sent `/start` with the payload and
/// was shown the Approve / Deny buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotLoginStatus {
    Pending,
    Started,
    Approved,
    Denied,
    /// The browser collected the decision.
    Consumed,
}

impl BotLoginStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BotLoginStatus::Pending => "pending",
            BotLoginStatus::Started => "started",
            BotLoginStatus::Approved => "approved",
            BotLoginStatus::Denied => "denied",
            BotLoginStatus::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => BotLoginStatus::Pending,
            "started" => BotLoginStatus::Started,
            "approved" => BotLoginStatus::Approved,
            "denied" => BotLoginStatus::Denied,
            "consumed" => BotLoginStatus::Consumed,
            other => return Err(StoreError::Internal(format!("bot login status {other}"))),
        })
    }
}

/// A `t.me/<bot>?start=<payload>` link waiting to be confirmed in the chat. It serves either a
/// browser's pending authorization (`pending_hash` + `browser_hash`), a device code
/// (`device_hash`) or a backchannel authentication request (`ciba_hash`).
#[derive(Debug, Clone)]
pub struct BotLoginRecord {
    /// Public handle, short enough for a button's `callback_data` (64 bytes).
    pub id: String,
    pub payload_hash: Vec<u8>,
    pub client_id: String,
    pub pending_hash: Option<Vec<u8>>,
    pub browser_hash: Option<Vec<u8>>,
    pub device_hash: Option<Vec<u8>>,
    /// Or a backchannel authentication request (CIBA): the SHA-256 of its `auth_req_id`.
    pub ciba_hash: Option<Vec<u8>>,
    pub status: BotLoginStatus,
    /// Who sent `/start`: only they may press Approve or Deny.
    pub telegram_id: Option<i64>,
    /// The approved `TelegramIdentity`, as JSON.
    pub identity: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The number the waiting page shows, which the user must press in the chat (10-99).
    /// `None` for logins created before number matching.
    pub match_code: Option<i64>,
    /// What asked for the login, as JSON (`flow::bot_chat::Requester`).
    pub requester: Option<String>,
    /// How it was answered: `approve`, `deny`, `wrong_number` or `not_me`.
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued for it.
    Consumed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "consumed" => DeviceStatus::Consumed,
            other => return Err(StoreError::Internal(format!("device code status {other}"))),
        })
    }
}

/// An RFC 8628 device authorization.
#[derive(Debug, Clone)]
pub struct DeviceCodeRecord {
    pub device_code_hash: Vec<u8>,
    pub user_code_hash: Vec<u8>,
    pub client_id: String,
    pub scope: String,
    pub status: DeviceStatus,
    pub user_id: Option<i64>,
    pub auth_time: Option<i64>,
    pub amr: Option<String>,
    pub interval_secs: i64,
    /// Unix milliseconds of the last poll in time.
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Who approved a device code, and how they had proven themselves.
#[derive(Debug, Clone)]
pub struct DeviceApproval {
    pub user_id: i64,
    pub auth_time: i64,
    pub amr: String,
}

/// What one poll of the token endpoint finds (RFC 8628 §3.5).
#[derive(Debug, Clone)]
pub enum DevicePoll {
    /// No such device code for this client.
    Unknown,
    Expired,
    /// Polled sooner than the interval allows; the interval is now this.
    SlowDown {
        interval_secs: i64,
    },
    /// The poll was in time: the code as it stands now.
    Polled(DeviceCodeRecord),
}

/// Where a backchannel authentication request stands: the same steps as a device code.
pub type CibaStatus = DeviceStatus;

/// A backchannel authentication request (CIBA Core 1.0 §7): an app asked for `user_id`, who
/// answers in the bot chat. No `Debug`: it holds the client's notification token.
#[derive(Clone)]
pub struct CibaRequestRecord {
    /// SHA-256 of the `auth_req_id`.
    pub request_hash: Vec<u8>,
    pub client_id: String,
    /// The user the hint named: only they are asked.
    pub user_id: i64,
    pub scope: String,
    pub binding_message: Option<String>,
    pub status: CibaStatus,
    /// Who approved, when and how (the hinted user, once they answered).
    pub approved_user_id: Option<i64>,
    pub auth_time: Option<i64>,
    pub amr: Option<String>,
    pub interval_secs: i64,
    /// Unix milliseconds of the last poll in time.
    pub last_polled_at: Option<i64>,
    /// Ping mode (CIBA §10.2): the bearer token the client chose for its own notification
    /// endpoint. Kept as sent, since it must be sent back; never logged.
    pub notification_token: Option<String>,
    /// Ping mode: the random seed the `auth_req_id` was derived from under a server secret,
    /// so that the notification can name it while the database holds only its hash.
    pub id_seed: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What one poll of the token endpoint finds for a CIBA request (CIBA §11).
#[derive(Clone)]
pub enum CibaPoll {
    /// No such request for this client.
    Unknown,
    Expired,
    /// Polled sooner than the interval allows; the interval is now this.
    SlowDown {
        interval_secs: i64,
    },
    /// The poll was in time: the request as it stands now.
    Polled(Box<CibaRequestRecord>),
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn create_bot_login(&self, login: &BotLoginRecord) -> StoreResult<()>;
    async fn get_bot_login(&self, id: &str) -> StoreResult<Option<BotLoginRecord>>;
    /// `/start <payload>`: binds a pending, unexpired login to the Telegram user who sent it,
    /// once; the same user may start it again (the question is asked again). `None` when the
    /// payload is unknown, answered, expired, or bound to another user.
    async fn start_bot_login(
        &self,
        payload_hash: &[u8],
        telegram_id: i64,
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>>;
    /// Approve (with the identity, as JSON) or deny (`identity` is `None`), only by the user
    /// bound at `/start` and only once; `answer` records how (`approve`, `deny`,
    /// `wrong_number`, `not_me`). The login then lives until `keep_until`, so the waiting
    /// browser can still collect the answer.
    async fn decide_bot_login(
        &self,
        id: &str,
        telegram_id: i64,
        identity: Option<&str>,
        answer: &str,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<Option<BotLoginRecord>>;
    /// The browser that started the login collects the decision, once.
    async fn finish_bot_login(
        &self,
        id: &str,
        browser_hash: &[u8],
        pending_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>>;

    /// Fails with [`StoreError::Conflict`] when the user code is taken.
    async fn create_device_code(&self, code: &DeviceCodeRecord) -> StoreResult<()>;
    /// A device code still waiting for the user, by its user code.
    async fn find_device_code(
        &self,
        user_code_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>>;
    /// Approves (`Some`) or denies (`None`) a waiting, unexpired device code, once; `None` when
    /// it was not waiting any more.
    async fn decide_device_code(
        &self,
        device_code_hash: &[u8],
        approval: Option<&DeviceApproval>,
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>>;
    /// One poll by the device at `now_millis` (Unix milliseconds): records it, and enforces
    /// the interval to the millisecond.
    async fn poll_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<DevicePoll>;
    /// Marks an approved device code consumed; of many parallel callers exactly one gets it.
    async fn consume_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>>;

    async fn create_ciba_request(&self, request: &CibaRequestRecord) -> StoreResult<()>;
    /// Approves (`Some`) or denies (`None`) a waiting, unexpired CIBA request, once; `None`
    /// when it was not waiting any more.
    async fn decide_ciba_request(
        &self,
        request_hash: &[u8],
        approval: Option<&DeviceApproval>,
        now: i64,
    ) -> StoreResult<Option<CibaRequestRecord>>;
    /// One poll by the client at `now_millis` (Unix milliseconds): records it, and enforces
    /// the interval to the millisecond.
    async fn poll_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<CibaPoll>;
    /// Marks an approved request consumed; of many parallel callers exactly one gets it.
    async fn consume_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<CibaRequestRecord>>;
    /// The Telegram id of the user last seen with this username (any case), for a CIBA
    /// `login_hint`.
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<i64>>;
    /// Users this client has served (consented to it, or hold a grant of it), at most `limit`:
    /// the candidates a pairwise `sub` may belong to.
    async fn client_user_ids(&self, client_id: &str, limit: i64) -> StoreResult<Vec<i64>>;
}
