//! Who may log in to which app. The gate asks the policy before anything is issued for a user,
//! whichever way Telegram proved them, and again at every refresh.
//!
//! [`TelegramPolicy`] is the real one: each app's rule (`access::Rule`, kept in the client's
//! settings) evaluated against the user's record and their standing in the chats it names,
//! asked of the Bot API (`getChatMember`) and cached per node for `policy.cache_secs`. When the
//! Bot API fails (timeout, 5xx, 429 with `retry_after`), an older answer stands in for up to
//! `policy.stale_secs`; without one the login fails closed. The same answers make the
//! configured groups (`[groups]`) of the `groups` claim.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::access::{GroupSpec, MemberStatus, Person, Rule, Verdict};
use crate::clock::Clock;
use crate::config::{Config, PolicyConfig};
use crate::store::{ClientRecord, UserRecord};
use crate::telegram::bot::{BotApi, BotApiError};

/// What the policy answers for one user and one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Not let in; `rule` says which rule refused, for the log (never for the user).
    Refuse {
        rule: String,
    },
    /// The answer needs a chat membership that could not be learned (the Bot API failed and
    /// nothing usable is cached): the login fails closed.
    Unavailable {
        reason: String,
    },
}

#[async_trait]
pub trait LoginPolicy: Send + Sync + 'static {
    /// Whether this app has rules at all; when not, the gate reads nothing to ask.
    fn applies_to(&self, client: &ClientRecord) -> bool;
    async fn admit(&self, user: &UserRecord, client: &ClientRecord) -> Admission;

    /// Whether any group is configured, so the `groups` claim has something to say.
    fn has_groups(&self) -> bool {
        false
    }

    /// The names of the configured groups the user is in; `Err` says which membership could
    /// not be learned.
    async fn groups(&self, _user: &UserRecord) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
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

/// Cached membership answers kept by one node, at most this many (older ones go first).
const CACHE_LIMIT: usize = 50_000;
/// How long the Bot API is left alone after a 429 that named no `retry_after`.
const DEFAULT_RETRY_AFTER: i64 = 5;

/// Each app's rule, with chat memberships from the Bot API.
pub struct TelegramPolicy {
    /// `None` without a bot token: no membership can be learned, so a rule that needs one
    /// fails closed.
    bot: Option<Arc<BotApi>>,
    clock: Arc<dyn Clock>,
    settings: PolicyConfig,
    groups: Vec<(String, GroupSpec)>,
    cache: Mutex<MembershipCache>,
}

#[derive(Default)]
struct MembershipCache {
    /// (chat, user) -> (standing, when Telegram said so).
    answers: HashMap<(i64, i64), (MemberStatus, i64)>,
    /// After a 429: no call before this time.
    quiet_until: i64,
}

impl TelegramPolicy {
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<TelegramPolicy> {
        let bot = if config.telegram.bot_token.is_empty() {
            None
        } else {
            Some(Arc::new(BotApi::new(
                &config.telegram.bot_api_url,
                config.telegram.bot_token.clone(),
            )?))
        };
        Ok(TelegramPolicy {
            bot,
            clock,
            settings: config.policy.clone(),
            groups: config
                .groups
                .iter()
                .map(|(name, spec)| (name.clone(), *spec))
                .collect(),
            cache: Mutex::new(MembershipCache::default()),
        })
    }

    /// The user's standing in `chat`: fresh from the cache, else from the Bot API, else (the
    /// Bot API failing) an older cached answer; `None` when none of these is at hand.
    async fn status(&self, chat: i64, user: i64) -> Option<MemberStatus> {
        let now = self.clock.now();
        let quiet = {
            let cache = self.cache.lock().ok()?;
            if let Some((status, at)) = cache.answers.get(&(chat, user))
                && now - at < self.settings.cache_secs
            {
                return Some(*status);
            }
            now < cache.quiet_until
        };
        let Some(bot) = &self.bot else {
            tracing::warn!(
                chat,
                "a policy or group needs chat membership, but no bot token is configured"
            );
            return None;
        };
        if quiet {
            return self.stale(chat, user, now, "the Bot API asked to wait (429)");
        }
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        let reason = match bot.get_chat_member(chat, user, timeout).await {
            Ok(member) => match MemberStatus::from_bot_api(&member.status, member.is_member) {
                Some(status) => {
                    self.remember(chat, user, status, now);
                    return Some(status);
                }
                None => format!("unknown member status `{}`", member.status),
            },
            Err(BotApiError::Refused {
                code: 400,
                description,
                ..
            }) if not_a_participant(&description) => {
                self.remember(chat, user, MemberStatus::Left, now);
                return Some(MemberStatus::Left);
            }
            Err(BotApiError::Refused {
                code: 429,
                retry_after,
                ..
            }) => {
                let wait = retry_after
                    .and_then(|s| i64::try_from(s).ok())
                    .unwrap_or(DEFAULT_RETRY_AFTER)
                    .min(3600);
                if let Ok(mut cache) = self.cache.lock() {
                    cache.quiet_until = cache.quiet_until.max(now + wait);
                }
                format!("the Bot API is rate limiting (retry after {wait} s)")
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(chat, error = %reason, "getChatMember failed");
        self.stale(chat, user, now, &reason)
    }

    /// An older answer, while it may stand in for a failing Bot API.
    fn stale(&self, chat: i64, user: i64, now: i64, reason: &str) -> Option<MemberStatus> {
        let cache = self.cache.lock().ok()?;
        match cache.answers.get(&(chat, user)) {
            Some((status, at)) if now - at <= self.settings.stale_secs => {
                tracing::info!(
                    chat,
                    user_id = user,
                    age_secs = now - at,
                    reason,
                    "chat membership from an older answer"
                );
                Some(*status)
            }
            _ => None,
        }
    }

    fn remember(&self, chat: i64, user: i64, status: MemberStatus, now: i64) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.answers.len() >= CACHE_LIMIT {
            let keep_after = now - self.settings.cache_secs;
            cache.answers.retain(|_, (_, at)| *at > keep_after);
            if cache.answers.len() >= CACHE_LIMIT {
                cache.answers.clear();
            }
        }
        cache.answers.insert((chat, user), (status, now));
    }
}

/// The Bot API's ways of saying that a user is not in a chat (rather than that the chat or the
/// bot is the problem).
fn not_a_participant(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("user not found")
        || d.contains("member not found")
        || d.contains("participant_id_invalid")
}

fn person(user: &UserRecord) -> Person<'_> {
    Person {
        telegram_id: user.telegram_id,
        username: user.username.as_deref(),
        is_premium: user.is_premium,
        language_code: user.language_code.as_deref(),
    }
}

#[async_trait]
impl LoginPolicy for TelegramPolicy {
    fn applies_to(&self, client: &ClientRecord) -> bool {
        client.settings.access_policy.is_some()
    }

    async fn admit(&self, user: &UserRecord, client: &ClientRecord) -> Admission {
        let Some(rule) = &client.settings.access_policy else {
            return Admission::Admit;
        };
        evaluate(rule, user, |chat| self.status(chat, user.telegram_id)).await
    }

    fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    async fn groups(&self, user: &UserRecord) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for (name, spec) in &self.groups {
            match self.status(spec.chat, user.telegram_id).await {
                Some(status) if spec.holds(status) => names.push(name.clone()),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "the membership of chat {} (group {name}) could not be learned",
                        spec.chat
                    ));
                }
            }
        }
        Ok(names)
    }
}

/// Evaluates `rule`, asking `lookup` only for the chats the answer still depends on, one at a
/// time (an id list that admits needs no Bot API call).
async fn evaluate<F, Fut>(rule: &Rule, user: &UserRecord, lookup: F) -> Admission
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Option<MemberStatus>>,
{
    let person = person(user);
    // Asked already: the answer, or `None` when it could not be learned.
    let mut known: HashMap<i64, Option<MemberStatus>> = HashMap::new();
    loop {
        // The first chat the evaluation wanted and nobody has asked about yet.
        let unasked: Cell<Option<i64>> = Cell::new(None);
        let verdict = rule.evaluate(&person, &|chat| match known.get(&chat) {
            Some(status) => *status,
            None => {
                if unasked.get().is_none() {
                    unasked.set(Some(chat));
                }
                None
            }
        });
        match verdict {
            Verdict::Admit => return Admission::Admit,
            Verdict::Refuse(rule) => return Admission::Refuse { rule },
            Verdict::Unknown(chat) => match unasked.get() {
                Some(next) => {
                    let status = lookup(next).await;
                    known.insert(next, status);
                }
                None => {
                    return Admission::Unavailable {
                        reason: format!("the membership of chat {chat} could not be learned"),
                    };
                }
            },
        }
    }
}

/// Every chat the apps' policies and the configured groups name.
pub fn named_chats(config: &Config, clients: &[ClientRecord]) -> Vec<i64> {
    let mut chats: Vec<i64> = config.groups.values().map(|g| g.chat).collect();
    for client in clients {
        if let Some(rule) = &client.settings.access_policy {
            chats.extend(rule.chats());
        }
    }
    chats.sort_unstable();
    chats.dedup();
    chats
}

/// Something wrong with a chat a policy or group names.
#[derive(Debug, Clone)]
pub struct ChatProblem {
    pub message: String,
    /// Telegram said so (the bot is not in the chat, the chat does not exist); `false` when
    /// the Bot API could not be reached or did not answer.
    pub definite: bool,
}

/// Asks Telegram whether the bot itself is in each chat; returns what is wrong (empty when all
/// is well). Without the bot there, `getChatMember` cannot answer about anyone.
pub async fn check_bot_in_chats(
    bot: &BotApi,
    chats: &[i64],
    timeout: Duration,
) -> Vec<ChatProblem> {
    let Some(bot_id) = bot.bot_id() else {
        return vec![ChatProblem {
            message: "the bot token does not start with the bot's id".into(),
            definite: true,
        }];
    };
    let mut problems = Vec::new();
    for &chat in chats {
        match bot.get_chat_member(chat, bot_id, timeout).await {
            Ok(member) => match member.status.as_str() {
                "creator" | "administrator" | "member" => {}
                other => problems.push(ChatProblem {
                    message: format!(
                        "the bot is not in chat {chat} (status {other}): add it to the chat (as an administrator in a channel)"
                    ),
                    definite: true,
                }),
            },
            Err(e) => problems.push(ChatProblem {
                definite: matches!(&e, BotApiError::Refused { code, .. } if *code == 400 || *code == 403),
                message: format!("chat {chat}: {e}"),
            }),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ChatRule;

    fn user() -> UserRecord {
        UserRecord {
            telegram_id: 7,
            first_name: "Ada".into(),
            last_name: None,
            username: None,
            photo_url: None,
            language_code: None,
            is_premium: false,
            phone_number: None,
            created_at: 0,
            updated_at: 0,
            groups: None,
        }
    }

    fn member_of(chat: i64) -> Rule {
        Rule::MemberOf(ChatRule {
            chat,
            role: crate::access::Role::Member,
            allow_restricted: false,
        })
    }

    #[tokio::test]
    async fn asks_only_for_the_chats_the_answer_needs() {
        let asked: Mutex<Vec<i64>> = Mutex::new(Vec::new());
        let lookup = |chat: i64| {
            asked.lock().unwrap().push(chat);
            async move { (chat == -2).then_some(MemberStatus::Member) }
        };
        let rule = Rule::Any(vec![Rule::Ids(vec![7]), member_of(-1)]);
        assert_eq!(evaluate(&rule, &user(), lookup).await, Admission::Admit);
        assert!(asked.lock().unwrap().is_empty());

        let rule = Rule::Any(vec![member_of(-1), member_of(-2)]);
        assert_eq!(evaluate(&rule, &user(), lookup).await, Admission::Admit);
        assert_eq!(*asked.lock().unwrap(), vec![-1, -2]);

        let rule = Rule::All(vec![member_of(-2), member_of(-1)]);
        assert!(matches!(
            evaluate(&rule, &user(), lookup).await,
            Admission::Unavailable { .. }
        ));
    }

    #[test]
    fn participants_are_told_from_broken_chats() {
        assert!(not_a_participant("Bad Request: user not found"));
        assert!(not_a_participant("Bad Request: PARTICIPANT_ID_INVALID"));
        assert!(!not_a_participant("Bad Request: chat not found"));
    }
}
