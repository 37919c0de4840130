//! A device approval (RFC 8628 §3.3), given on the `/device` page or in the bot chat: the gate
//! admits the user for the device's app, the device code is decided, and approving, where the
//! app is named, is the user's consent to its scopes.

use crate::flow::login::{self, Refused};
use crate::state::App;
use crate::store::flows::DeviceApproval;
use crate::store::{ClientRecord, UserRecord};

/// How a decision on a device code ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    Approved,
    Denied,
    /// Answered already, or out of time.
    Gone,
}

/// The user pressed Deny.
pub async fn deny(app: &App, device_hash: &[u8], now: i64) -> Result<Decided, Refused> {
    Ok(
        match app.store.decide_device_code(device_hash, None, now).await? {
            Some(_) => Decided::Denied,
            None => Decided::Gone,
        },
    )
}

/// The user pressed Approve. `user` is the record the gate's first step returned (bot), or
/// `None` for a user of an existing browser session (page). A user the policy does not admit
/// is refused, and the device code is denied so the device stops polling.
pub async fn approve(
    app: &App,
    device_hash: &[u8],
    client: &ClientRecord,
    approval: DeviceApproval,
    user: Option<&UserRecord>,
    now: i64,
) -> Result<Decided, Refused> {
    if let Err(refused) = login::admit(app, approval.user_id, user, client).await {
        // Denied for good only when the policy said no; an outage leaves the code waiting.
        if matches!(refused, Refused::NotAdmitted) {
            app.store.decide_device_code(device_hash, None, now).await?;
        }
        return Err(refused);
    }
    let Some(code) = app
        .store
        .decide_device_code(device_hash, Some(&approval), now)
        .await?
    else {
        return Ok(Decided::Gone);
    };
    app.store
        .save_consent(approval.user_id, &code.client_id, &code.scope, now)
        .await?;
    Ok(Decided::Approved)
}
