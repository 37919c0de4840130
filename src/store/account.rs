//! What users manage themselves (the bot's `/apps`, `/sessions` and `/alerts`, the `/account`
//! page): the apps they gave something to, their signed-in browsers, their login alerts.

use async_trait::async_trait;

use super::{SessionRecord, StoreResult};

/// One app a user gave something to: a consent, or a live grant or access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAppRecord {
    pub client_id: String,
    /// The scopes consented to; for an app without consent (it skips the page), those of its
    /// live grants.
    pub scope: String,
    /// The latest consent, login or token for this app.
    pub last_used_at: i64,
}

/// A user's login alert setting as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginAlertsRecord {
    /// What the user chose with `/alerts on|off`; `None`: the configured default.
    pub chosen: Option<bool>,
    /// When the user first logged in through the bot chat, if ever.
    pub bot_chat_since: Option<i64>,
}

/// One row of the apps query, before rows of the same app are merged.
#[derive(Debug, Clone)]
pub(crate) struct AppRow {
    pub client_id: String,
    pub scope: String,
    pub used_at: i64,
    pub consented: bool,
}

/// Merges the rows of [`sql::LIST_USER_APPS`](super::sql::LIST_USER_APPS) into one entry per
/// app, most recently used first.
pub(crate) fn merge_apps(rows: Vec<AppRow>) -> Vec<UserAppRecord> {
    let mut apps: Vec<(UserAppRecord, bool)> = Vec::new();
    for row in rows {
        match apps.iter_mut().find(|(a, _)| a.client_id == row.client_id) {
            Some((app, consented)) => {
                app.last_used_at = app.last_used_at.max(row.used_at);
                if row.consented {
                    app.scope = row.scope;
                    *consented = true;
                } else if !*consented {
                    for scope in row.scope.split(' ') {
                        if !app.scope.split(' ').any(|s| s == scope) {
                            app.scope.push(' ');
                            app.scope.push_str(scope);
                        }
                    }
                }
            }
            None => apps.push((
                UserAppRecord {
                    client_id: row.client_id,
                    scope: row.scope,
                    last_used_at: row.used_at,
                },
                row.consented,
            )),
        }
    }
    let mut apps: Vec<UserAppRecord> = apps.into_iter().map(|(a, _)| a).collect();
    apps.sort_by(|a, b| {
        b.last_used_at
            .cmp(&a.last_used_at)
            .then(a.client_id.cmp(&b.client_id))
    });
    apps
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The apps `user_id` consented to or holds a live grant or access token of.
    async fn list_user_apps(&self, user_id: i64, now: i64) -> StoreResult<Vec<UserAppRecord>>;
    /// Ends everything `user_id` gave `client_id`, in one transaction: the consent, every grant
    /// (so its codes and refresh tokens) and every access token. True when anything was live.
    async fn revoke_user_app(&self, user_id: i64, client_id: &str, now: i64) -> StoreResult<bool>;
    /// The live browser sessions of `user_id`, most recently used first.
    async fn list_user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Notes that a session was used at `now`.
    async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()>;
    /// Revokes the grants of `user_id` issued in the browser session `session_hash` (their
    /// codes, refresh and access tokens with them); returns the apps they were for.
    async fn revoke_session_grants(
        &self,
        user_id: i64,
        session_hash: &[u8],
        now: i64,
    ) -> StoreResult<Vec<String>>;
    /// A known user's login alert setting; `None` for an unknown user.
    async fn login_alerts(&self, user_id: i64) -> StoreResult<Option<LoginAlertsRecord>>;
    /// Stores the user's choice; false when the user is unknown.
    async fn set_login_alerts(&self, user_id: i64, on: bool) -> StoreResult<bool>;
    /// Notes the user's first login through the bot chat.
    async fn note_bot_chat_login(&self, user_id: i64, now: i64) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(client_id: &str, scope: &str, used_at: i64, consented: bool) -> AppRow {
        AppRow {
            client_id: client_id.into(),
            scope: scope.into(),
            used_at,
            consented,
        }
    }

    #[test]
    fn rows_of_one_app_merge_into_one_entry() {
        let apps = merge_apps(vec![
            row("a", "openid profile", 10, true),
            row("b", "openid", 30, false),
            row("a", "openid offline_access", 20, false),
            row("b", "openid groups", 5, false),
        ]);
        assert_eq!(
            apps,
            vec![
                UserAppRecord {
                    client_id: "b".into(),
                    scope: "openid groups".into(),
                    last_used_at: 30,
                },
                UserAppRecord {
                    client_id: "a".into(),
                    scope: "openid profile".into(),
                    last_used_at: 20,
                },
            ]
        );
    }
}
