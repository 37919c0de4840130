//! Backchannel authentication (CIBA Core 1.0) with the bot chat as the authentication device:
//! the app's request is checked and stored (`oidc::ciba`), the question goes straight to the
//! hinted user's chat (`bot_chat::create_for_user`), and the answer passes the one gate
//! (`login::prove`, `login::admit`, `login::alert`) like every other login. In ping mode the
//! app is then told at its notification endpoint, in the background.

use serde_json::{Value, json};

use crate::error::{ErrorCode, OAuthResult};
use crate::flow::account::Undo;
use crate::flow::audit::{Event, Outcome};
use crate::flow::bot_chat::{self, Purpose, Pushed, Requester};
use crate::flow::device::Decided;
use crate::flow::login::{self, Opened, Refused};
use crate::oidc::ciba::{self, BackchannelRequest};
use crate::oidc::clients::chosen_by;
use crate::state::App;
use crate::store::flows::{CibaRequestRecord, DeviceApproval};
use crate::store::{ClientRecord, StoreError};
use crate::telegram::TelegramIdentity;

/// `POST /bc-authorize` for an authenticated client: the request is stored and the user asked
/// in their chat; the body of the acknowledgement (§7.3). A hint that names nobody, and a user
/// the bot cannot write to, get the same `unknown_user_id`.
pub async fn start(
    app: &App,
    client: &ClientRecord,
    request: &BackchannelRequest,
) -> OAuthResult<Value> {
    let now = app.now();
    let accepted = match ciba::check(app, client, request, now).await {
        Ok(accepted) => accepted,
        Err(e) => {
            if e.code == ErrorCode::UnknownUserId {
                app.audit(
                    Event::new("ciba.requested", Outcome::Refused)
                        .client(&client.client_id)
                        .with("reason", "unknown user"),
                );
            }
            return Err(e);
        }
    };
    let user_id = accepted.user_id;
    let binding_message = accepted.binding_message.clone();
    let started = ciba::start(app, client, accepted, now).await?;
    let (_, pushed) = bot_chat::create_for_user(
        app,
        &client.client_id,
        Purpose::Backchannel {
            request_hash: started.request_hash.clone(),
            binding_message,
        },
        &Requester::default(),
        started.expires_at,
        user_id,
    )
    .await?;
    if pushed != Pushed::Sent {
        // Nobody can answer: the request ends now, and the app hears what it would hear of a
        // user never seen.
        app.store
            .decide_ciba_request(&started.request_hash, None, now)
            .await?;
        app.audit(
            Event::new("ciba.requested", Outcome::Refused)
                .user(user_id)
                .client(&client.client_id)
                .with("reason", "the bot cannot write to the user"),
        );
        return Err(ciba::unknown_user());
    }
    app.audit(
        Event::new("ciba.requested", Outcome::Ok)
            .user(user_id)
            .client(&client.client_id),
    );
    Ok(started.body)
}

/// Approve pressed in the chat by the hinted user: the gate's steps (the proof is the press
/// itself, bound to that user from the start), then the request is approved with how and when
/// the user was authenticated; the login alert follows. A user the access policy does not
/// admit gets the request denied, so the app stops polling.
pub async fn approve(
    app: &App,
    request_hash: &[u8],
    client: &ClientRecord,
    identity: &TelegramIdentity,
    now: i64,
) -> Result<Decided, Refused> {
    let user = login::prove(app, identity, None, now).await?;
    if let Err(refused) = login::admit(app, identity.id, Some(&user), client).await {
        // Denied for good only when the policy said no; an outage leaves the request waiting.
        if matches!(refused, Refused::NotAdmitted) {
            deny(app, request_hash, client, "policy", now).await?;
        }
        return Err(refused);
    }
    let approval = DeviceApproval {
        user_id: identity.id,
        auth_time: now,
        amr: identity.method.amr().to_owned(),
    };
    let Some(request) = app
        .store
        .decide_ciba_request(request_hash, Some(&approval), now)
        .await?
    else {
        return Ok(Decided::Gone);
    };
    // Approving a named app in the chat is consenting to what it asked.
    app.store
        .save_consent(identity.id, &request.client_id, &request.scope, now)
        .await?;
    app.audit(
        Event::new("ciba.approved", Outcome::Ok)
            .user(identity.id)
            .client(&client.client_id)
            .with("method", identity.method.amr()),
    );
    notify(app, client, &request);
    let undo = Undo::App(client.client_id.clone());
    login::alert(app, identity, Opened::App(client), None, undo, now).await?;
    Ok(Decided::Approved)
}

/// Deny or "This wasn't me" pressed, or the policy refused: `answer` says which.
pub async fn deny(
    app: &App,
    request_hash: &[u8],
    client: &ClientRecord,
    answer: &'static str,
    now: i64,
) -> Result<Decided, StoreError> {
    let Some(request) = app
        .store
        .decide_ciba_request(request_hash, None, now)
        .await?
    else {
        return Ok(Decided::Gone);
    };
    app.audit(
        Event::new("ciba.denied", Outcome::Refused)
            .user(request.user_id)
            .client(&client.client_id)
            .with("answer", answer),
    );
    notify(app, client, &request);
    Ok(Decided::Denied)
}

/// Ping mode (§10.2): tells the client's notification endpoint that `auth_req_id` has an
/// answer, with the client's own token as the bearer; in the background, so the chat never
/// waits for the app. A failure is only logged: the client can still poll.
fn notify(app: &App, client: &ClientRecord, request: &CibaRequestRecord) {
    let Some(endpoint) = client
        .settings
        .ciba
        .as_ref()
        .and_then(|c| c.client_notification_endpoint.clone())
    else {
        return;
    };
    let (Some(token), Some(auth_req_id)) = (
        request.notification_token.clone(),
        ciba::auth_req_id_of(app, request),
    ) else {
        return;
    };
    let outbound = app.outbound.clone();
    let chosen = chosen_by(client);
    let client_id = client.client_id.clone();
    tokio::spawn(async move {
        let body = json!({ "auth_req_id": auth_req_id });
        match outbound
            .post_json_bearer(&endpoint, &body, &token, chosen)
            .await
        {
            Ok(status) if status.is_success() => {
                tracing::debug!(%client_id, "CIBA ping notification delivered");
            }
            Ok(status) => {
                tracing::warn!(%client_id, %status, "the CIBA notification endpoint refused the ping");
            }
            Err(e) => {
                tracing::warn!(%client_id, error = %e, "the CIBA ping notification failed");
            }
        }
    });
}
