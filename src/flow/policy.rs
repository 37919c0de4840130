//! Who may log in to which app. The gate asks the policy before anything is issued for a user,
//! whichever way Telegram proved them.

use async_trait::async_trait;

use crate::store::{ClientRecord, UserRecord};

/// What the policy answers for one user and one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Not let in; `rule` says which rule refused, for the log (never for the user).
    Refuse {
        rule: String,
    },
}

#[async_trait]
pub trait LoginPolicy: Send + Sync + 'static {
    /// Whether this app has rules at all; when not, the gate reads nothing to ask.
    fn applies_to(&self, client: &ClientRecord) -> bool;
    async fn admit(&self, user: &UserRecord, client: &ClientRecord) -> Admission;
}

/// Every Telegram user may log in to every app (no policy configured).
#[derive(Debug, Default)]
pub struct AdmitEveryone;

#[async_trait]
impl LoginPolicy for AdmitEveryone {
    fn applies_to(&self, _client: &ClientRecord) -> bool {
        false
    }

    async fn admit(&self, _user: &UserRecord, _client: &ClientRecord) -> Admission {
        Admission::Admit
    }
}
