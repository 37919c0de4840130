//! Client and key administration: what `telegram-oidc client ...`, `admin-key ...`, `keys ...`
//! and the admin API do, as plain functions both call. The rules a client must meet live in
//! `oidc::clients`, shared with dynamic registration. Every change is audited here, once.

pub use crate::oidc::clients::*;

use crate::keys::{KeyInfo, KeyStore, SigningAlg};
use crate::secrets::{TokenKind, constant_time_eq, new_id, new_token, sha256, token_hash};
use crate::store::{
    AdminKeyRecord, AdminScope, AuditEntry, AuditQuery, ClientRecord, SessionRecord, Store,
    StoreResult, UserAppRecord, UserQuery, UserSummary,
};

/// What the login pages and the gate see as the "app" of a sign-in to the admin desk: an app
/// whose access policy names the admins (`admin.telegram_ids`, and the creator and
/// administrators of `admin.chat_id`), so the same gate that admits users to apps admits
/// admins to the desk. With neither set it admits nobody.
pub fn desk_client(
    config: &crate::config::Config,
    name: &str,
    url: &str,
) -> Result<ClientRecord, AdminError> {
    use crate::access::{ChatRule, Role, Rule};
    let admin = &config.admin;
    let mut rules = vec![Rule::Ids(admin.telegram_ids.clone())];
    if let Some(chat) = admin.chat_id {
        rules.push(Rule::MemberOf(ChatRule {
            chat,
            role: Role::Administrator,
            allow_restricted: false,
        }));
    }
    let settings = serde_json::from_value(serde_json::json!({
        "name": name,
        "kind": "public",
        "redirect_uris": [url],
        "allowed_scopes": [],
        "id_token_alg": "RS256",
        "require_bot_confirmation": admin.require_bot_confirmation,
        "access_policy": Rule::Any(rules),
    }))
    .map_err(|e| AdminError::Invalid(format!("the admin desk: {e}")))?;
    Ok(ClientRecord {
        client_id: crate::oidc::authorize::ADMIN_DESK.to_owned(),
        secret_hash: None,
        settings,
        created_at: 0,
    })
}

/// Who takes an admin action, and from where: `cli`, or `key:<id>` with the request's address.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            ..Actor::default()
        }
    }
}

/// Records an admin action in the audit log: what (`event`, e.g. `admin.client.created`), on
/// which client, by whom (`actor`: `cli`, an admin key id), with `detail` (before and after).
/// Written at once, not batched: admin actions are rare and must not be lost.
pub async fn record_action(
    store: &dyn Store,
    actor: &str,
    event: &str,
    client_id: Option<&str>,
    detail: serde_json::Value,
    now_millis: i64,
) -> StoreResult<()> {
    let actor = Actor {
        name: actor.to_owned(),
        ..Actor::default()
    };
    record(store, &actor, event, "ok", client_id, detail, now_millis).await
}

/// Records an admin action (or a refusal, with `result` `refused`) by `actor`.
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    event: &str,
    result: &str,
    client_id: Option<&str>,
    detail: serde_json::Value,
    now_millis: i64,
) -> StoreResult<()> {
    store
        .record_audit(&[AuditEntry {
            at: now_millis,
            event: event.to_owned(),
            result: result.to_owned(),
            client_id: client_id.map(str::to_owned),
            actor: Some(actor.name.clone()),
            ip: actor.ip.clone(),
            request_id: actor.request_id.clone(),
            detail,
            ..AuditEntry::default()
        }])
        .await
}

/// Records a change already made: a log that cannot be written is reported, the change stays.
async fn audited(
    store: &dyn Store,
    actor: &Actor,
    event: &str,
    client_id: Option<&str>,
    detail: serde_json::Value,
    now_millis: i64,
) {
    if let Err(e) = record(store, actor, event, "ok", client_id, detail, now_millis).await {
        tracing::error!(error = %e, event, "the audit log could not record an admin action");
    }
}

/// The version of a client's settings, as an HTTP entity tag (RFC 9110 §8.8.3): it changes
/// whenever a setting does, so an update made on an older read can be refused.
pub fn client_etag(client: &ClientRecord) -> String {
    let json = serde_json::to_vec(&client.settings).unwrap_or_default();
    let digest = sha256(&json);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Refuses when the caller read another version than the stored one (`If-Match`).
fn check_version(client: &ClientRecord, if_match: Option<&str>) -> Result<(), AdminError> {
    match if_match {
        None => Ok(()),
        Some(tags) => {
            let current = client_etag(client);
            let matches = tags.split(',').map(str::trim).any(|t| {
                t == "*"
                    || constant_time_eq(t.trim_start_matches("W/").as_bytes(), current.as_bytes())
            });
            if matches {
                Ok(())
            } else {
                Err(AdminError::VersionMismatch(current))
            }
        }
    }
}

/// Registers a client (see [`add_client`]), allows it token exchange if asked (with the
/// bot id of another bot's Mini App), and audits it.
pub async fn create_client(
    store: &dyn Store,
    actor: &Actor,
    new: NewClient,
    token_exchange: Option<Option<i64>>,
    now_millis: i64,
) -> Result<(ClientRecord, Option<String>), AdminError> {
    // Checked before the client exists, so a refusal leaves nothing half registered.
    if let Some(Some(id)) = token_exchange
        && id <= 0
    {
        return Err(AdminError::Invalid(
            "a bot id is the positive number before `:` in its token".into(),
        ));
    }
    let (client, secret) = add_client(store, new, now_millis / 1000).await?;
    let client = match token_exchange {
        Some(bot) => allow_token_exchange(store, &client.client_id, bot).await?,
        None => client,
    };
    audited(
        store,
        actor,
        "admin.client.created",
        Some(&client.client_id),
        serde_json::json!({"after": client.settings}),
        now_millis,
    )
    .await;
    Ok((client, secret))
}

/// One client, or `NotFound`.
pub async fn get_client(store: &dyn Store, client_id: &str) -> Result<ClientRecord, AdminError> {
    store
        .get_client(client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(client_id.into()))
}

/// Changes a client (see [`update_client`]) if it is still at version `if_match`; audited
/// with the settings before and after.
pub async fn change_client(
    store: &dyn Store,
    actor: &Actor,
    client_id: &str,
    update: ClientUpdate,
    if_match: Option<&str>,
    now_millis: i64,
) -> Result<ClientRecord, AdminError> {
    let before = get_client(store, client_id).await?;
    check_version(&before, if_match)?;
    let mut client = before.clone();
    apply_update(&mut client, update)?;
    // Written only if nobody changed the client since it was read here: a change made in
    // between is not overwritten, and the caller hears of it as a stale version.
    if !store
        .update_client_unless_changed(&client, &before.settings)
        .await?
    {
        let now = get_client(store, client_id).await?;
        return Err(AdminError::VersionMismatch(client_etag(&now)));
    }
    audited(
        store,
        actor,
        "admin.client.updated",
        Some(client_id),
        serde_json::json!({"before": before.settings, "after": client.settings}),
        now_millis,
    )
    .await;
    Ok(client)
}

/// Removes a client (its tokens stop working at once) if it is still at version `if_match`.
pub async fn remove_client(
    store: &dyn Store,
    actor: &Actor,
    client_id: &str,
    if_match: Option<&str>,
    now_millis: i64,
) -> Result<(), AdminError> {
    let before = get_client(store, client_id).await?;
    check_version(&before, if_match)?;
    // With a version given, removed only if nobody changed the client since it was read
    // here, in the same transaction: a change made in between is not silently discarded.
    let removed = match if_match {
        Some(_) => {
            store
                .delete_client_unless_changed(client_id, &before.settings)
                .await?
        }
        None => store.delete_client(client_id).await?,
    };
    if !removed {
        return Err(match store.get_client(client_id).await? {
            Some(now) => AdminError::VersionMismatch(client_etag(&now)),
            None => AdminError::NotFound(client_id.into()),
        });
    }
    audited(
        store,
        actor,
        "admin.client.removed",
        Some(client_id),
        serde_json::json!({"before": before.settings}),
        now_millis,
    )
    .await;
    Ok(())
}

/// Gives a confidential client a new secret (see [`rotate_secret`]); audited without it.
pub async fn new_client_secret(
    store: &dyn Store,
    actor: &Actor,
    client_id: &str,
    now_millis: i64,
) -> Result<String, AdminError> {
    let secret = rotate_secret(store, client_id).await?;
    audited(
        store,
        actor,
        "admin.client.secret_rotated",
        Some(client_id),
        serde_json::Value::Null,
        now_millis,
    )
    .await;
    Ok(secret)
}

/// Makes a new signing key (see [`KeyStore::rotate_after`]); audited.
pub async fn rotate_signing_key(
    keys: &KeyStore,
    store: &dyn Store,
    actor: &Actor,
    alg: SigningAlg,
    activate_in: i64,
    now_millis: i64,
) -> Result<KeyInfo, AdminError> {
    if !(0..=86_400).contains(&activate_in) {
        return Err(AdminError::Invalid(
            "activate_in is 0 to 86400 seconds".into(),
        ));
    }
    let info = keys
        .rotate_after(alg, now_millis / 1000, activate_in)
        .map_err(|e| AdminError::Invalid(format!("cannot make a new key: {e}")))?;
    audited(
        store,
        actor,
        "admin.key.rotated",
        None,
        serde_json::json!({"kid": info.kid, "alg": info.alg.to_string(), "activate_in": activate_in}),
        now_millis,
    )
    .await;
    Ok(info)
}

/// Entries of the audit log, newest first, with the cursor of the next page.
pub async fn query_audit(
    store: &dyn Store,
    query: &AuditQuery,
) -> Result<(Vec<AuditEntry>, Option<i64>), AdminError> {
    let entries = store.query_audit(query).await?;
    let next = (entries.len() == query.limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok((entries, next))
}

/// Records a change to a user's standing, made already.
async fn audited_user(
    store: &dyn Store,
    actor: &Actor,
    event: &str,
    user_id: i64,
    client_id: Option<&str>,
    detail: serde_json::Value,
    now_millis: i64,
) {
    let entry = AuditEntry {
        at: now_millis,
        event: event.to_owned(),
        result: "ok".to_owned(),
        user_id: Some(user_id),
        client_id: client_id.map(str::to_owned),
        actor: Some(actor.name.clone()),
        ip: actor.ip.clone(),
        request_id: actor.request_id.clone(),
        detail,
        ..AuditEntry::default()
    };
    if let Err(e) = store.record_audit(&[entry]).await {
        tracing::error!(error = %e, event, "the audit log could not record an admin action");
    }
}

/// One user, or `NoUser`.
pub async fn get_user(store: &dyn Store, user_id: i64) -> Result<UserSummary, AdminError> {
    store
        .user_summary(user_id)
        .await?
        .ok_or(AdminError::NoUser(user_id))
}

/// A user with the apps they gave something to and their live browser sessions.
pub async fn user_detail(
    store: &dyn Store,
    user_id: i64,
    now: i64,
) -> Result<(UserSummary, Vec<UserAppRecord>, Vec<SessionRecord>), AdminError> {
    let user = get_user(store, user_id).await?;
    let apps = store.list_user_apps(user_id, now).await?;
    let sessions = store.list_user_sessions(user_id, now).await?;
    Ok((user, apps, sessions))
}

/// Users by id, with the cursor of the next page.
pub async fn list_users(
    store: &dyn Store,
    query: &UserQuery,
) -> Result<(Vec<UserSummary>, Option<i64>), AdminError> {
    let users = store.list_users(query).await?;
    let next = (users.len() == query.limit as usize)
        .then(|| users.last().map(|u| u.telegram_id))
        .flatten();
    Ok((users, next))
}

/// Blocks a user: from now on they pass no login gate, and every grant, token, consent and
/// session they hold ends at once.
pub async fn block_user(
    store: &dyn Store,
    actor: &Actor,
    user_id: i64,
    now_millis: i64,
) -> Result<UserSummary, AdminError> {
    if !store.block_user(user_id, now_millis / 1000).await? {
        return Err(AdminError::NoUser(user_id));
    }
    audited_user(
        store,
        actor,
        "admin.user.blocked",
        user_id,
        None,
        serde_json::Value::Null,
        now_millis,
    )
    .await;
    get_user(store, user_id).await
}

/// Lets a blocked user log in again (nothing they lost comes back).
pub async fn unblock_user(
    store: &dyn Store,
    actor: &Actor,
    user_id: i64,
    now_millis: i64,
) -> Result<UserSummary, AdminError> {
    if !store.unblock_user(user_id).await? {
        return Err(AdminError::NoUser(user_id));
    }
    audited_user(
        store,
        actor,
        "admin.user.unblocked",
        user_id,
        None,
        serde_json::Value::Null,
        now_millis,
    )
    .await;
    get_user(store, user_id).await
}

/// Ends every grant, token, consent and browser session of a user; returns how many were live.
pub async fn revoke_user_everything(
    store: &dyn Store,
    actor: &Actor,
    user_id: i64,
    now_millis: i64,
) -> Result<u64, AdminError> {
    get_user(store, user_id).await?;
    let n = store
        .revoke_user_everything(user_id, now_millis / 1000)
        .await?;
    audited_user(
        store,
        actor,
        "admin.user.revoked",
        user_id,
        None,
        serde_json::json!({"ended": n}),
        now_millis,
    )
    .await;
    Ok(n)
}

/// Ends what a user gave one app: its consent, grants and tokens.
pub async fn revoke_user_grant(
    store: &dyn Store,
    actor: &Actor,
    user_id: i64,
    client_id: &str,
    now_millis: i64,
) -> Result<(), AdminError> {
    if !store
        .revoke_user_app(user_id, client_id, now_millis / 1000)
        .await?
    {
        return Err(AdminError::NotFound(client_id.into()));
    }
    audited_user(
        store,
        actor,
        "admin.grant.revoked",
        user_id,
        Some(client_id),
        serde_json::Value::Null,
        now_millis,
    )
    .await;
    Ok(())
}

/// Signs a user's browser session out (by the hex of its stored hash), with the grants made
/// in it.
pub async fn revoke_user_session(
    store: &dyn Store,
    actor: &Actor,
    user_id: i64,
    session: &str,
    now_millis: i64,
) -> Result<(), AdminError> {
    let now = now_millis / 1000;
    let Some(found) = store
        .list_user_sessions(user_id, now)
        .await?
        .into_iter()
        .find(|s| constant_time_eq(session_id(s).as_bytes(), session.as_bytes()))
    else {
        return Err(AdminError::NoSession(session.chars().take(80).collect()));
    };
    let clients = store
        .revoke_session_grants(user_id, &found.id_hash, now)
        .await?;
    store.delete_session(&found.id_hash).await?;
    audited_user(
        store,
        actor,
        "admin.session.revoked",
        user_id,
        None,
        serde_json::json!({"session": session_id(&found)[..16], "apps": clients}),
        now_millis,
    )
    .await;
    Ok(())
}

/// How the admin API names a browser session: the hex of its stored hash (not the cookie,
/// which only the browser holds).
pub fn session_id(session: &SessionRecord) -> String {
    session.id_hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `admin-key create` asks for.
#[derive(Debug, Clone)]
pub struct NewAdminKey {
    pub name: String,
    pub scope: AdminScope,
    /// Seconds from now; `None`: never expires.
    pub expires_in: Option<i64>,
    pub allow_ips: Vec<ipnet::IpNet>,
}

/// Makes an admin key. Returns its record and the key itself, shown this once.
pub async fn create_admin_key(
    store: &dyn Store,
    actor: &Actor,
    new: NewAdminKey,
    now_millis: i64,
) -> Result<(AdminKeyRecord, String), AdminError> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "the name must be 1 to 100 printable characters".into(),
        ));
    }
    if new.expires_in.is_some_and(|s| s <= 0) {
        return Err(AdminError::Invalid(
            "a key must expire in the future".into(),
        ));
    }
    let now = now_millis / 1000;
    let key = new_token(TokenKind::AdminKey);
    let record = AdminKeyRecord {
        id: new_id(),
        name: name.to_owned(),
        scope: new.scope,
        key_hash: token_hash(&key),
        allow_ips: new.allow_ips,
        created_at: now,
        expires_at: new.expires_in.map(|s| now.saturating_add(s)),
        revoked_at: None,
        last_used_at: None,
    };
    store.create_admin_key(&record).await?;
    audited(
        store,
        actor,
        "admin.admin_key.created",
        None,
        serde_json::json!({
            "id": record.id, "name": record.name, "scope": record.scope.as_str(),
            "expires_at": record.expires_at,
            "allow_ips": record.allow_ips.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        }),
        now_millis,
    )
    .await;
    Ok((record, key))
}

/// Revokes an admin key: it stops working at once.
pub async fn revoke_admin_key(
    store: &dyn Store,
    actor: &Actor,
    id: &str,
    now_millis: i64,
) -> Result<(), AdminError> {
    if !store.revoke_admin_key(id, now_millis / 1000).await? {
        return Err(AdminError::NoAdminKey(id.into()));
    }
    audited(
        store,
        actor,
        "admin.admin_key.revoked",
        None,
        serde_json::json!({"id": id}),
        now_millis,
    )
    .await;
    Ok(())
}

/// Why an admin key is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No such key, or revoked, or expired: the caller is not authenticated (401).
    Unknown,
    Revoked,
    Expired,
}

/// The live admin key `presented` is, by its SHA-256; notes its use.
pub async fn authenticate_key(
    store: &dyn Store,
    presented: &str,
    now: i64,
) -> Result<Result<AdminKeyRecord, KeyRefusal>, AdminError> {
    if !presented.starts_with(TokenKind::AdminKey.prefix()) || presented.len() > 200 {
        return Ok(Err(KeyRefusal::Unknown));
    }
    let hash = token_hash(presented);
    let Some(key) = store.admin_key_by_hash(&hash).await? else {
        return Ok(Err(KeyRefusal::Unknown));
    };
    if !constant_time_eq(&key.key_hash, &hash) {
        return Ok(Err(KeyRefusal::Unknown));
    }
    if key.revoked_at.is_some() {
        return Ok(Err(KeyRefusal::Revoked));
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Ok(Err(KeyRefusal::Expired));
    }
    // Minute resolution is enough to see which keys are still in use, and saves a write
    // on most requests.
    if key.last_used_at.is_none_or(|t| now - t >= 60) {
        store.touch_admin_key(&key.id, now).await?;
    }
    Ok(Ok(key))
}

/// Parses a duration such as `90d`, `12h`, `30m` or `3600s` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: give a number and a unit, e.g. 90d, 12h, 30m"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h, d or w")),
    };
    match n.checked_mul(unit) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(format!("`{text}` is not a positive duration")),
    }
}

/// Parses an address range (`10.0.0.0/8`) or one address (`192.0.2.7`).
pub fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is neither an address nor a CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ranges_parse() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
