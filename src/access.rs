//! The access rule language: who may enter an app. One serde model, written as TOML by an admin
//! (`client add --policy-file`) and kept as JSON in the client's settings:
//!
//! ```toml
//! [policy]
//! any = [{ ids = [12345] }, { member_of = -1001234567890 }]
//! ```
//!
//! A rule is a table with one key: `ids`, `usernames`, `member_of`, `premium`, `languages`, or
//! the combinators `all`, `any` and `not`. Evaluation is pure: chat memberships come from
//! whoever calls it (the login gate asks the Bot API, through a cache), and a membership that
//! could not be learned makes the answer unknown, never a guess.

use serde::{Deserialize, Serialize};

/// Nesting deeper than this is refused (a policy is read by people).
const MAX_DEPTH: usize = 8;
/// Rules and list entries in one policy, at most.
const MAX_ENTRIES: usize = 2000;

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The user's Telegram id is one of these.
    Ids(Vec<i64>),
    /// The user's username is one of these (case-insensitive, without `@`).
    Usernames(Vec<String>),
    /// The user is in this chat or channel (Bot API `getChatMember`).
    MemberOf(ChatRule),
    /// The user has Telegram Premium (`true`) or has not (`false`).
    Premium(bool),
    /// The user's Telegram language is one of these (`en` also matches `en-US`).
    Languages(Vec<String>),
    /// Every rule holds.
    All(Vec<Rule>),
    /// At least one rule holds.
    Any(Vec<Rule>),
    /// The rule does not hold.
    Not(Box<Rule>),
}

/// The role a chat rule or a group asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creator, administrator or member.
    #[default]
    Member,
    /// Creator or administrator.
    Administrator,
}

/// `member_of`: a chat id alone, or a table with the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ChatRuleSpec")]
pub struct ChatRule {
    pub chat: i64,
    pub role: Role,
    /// Whether a `restricted` member (muted, still in the chat) counts as a member.
    pub allow_restricted: bool,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a chat id such as -1001234567890, or a table { chat = -1001234567890, role = \"member\" | \"administrator\", allow_restricted = true | false }"
)]
enum ChatRuleSpec {
    Chat(i64),
    Table(ChatRuleTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRuleTable {
    chat: i64,
    #[serde(default)]
    role: Role,
    #[serde(default)]
    allow_restricted: bool,
}

impl From<ChatRuleSpec> for ChatRule {
    fn from(spec: ChatRuleSpec) -> Self {
        match spec {
            ChatRuleSpec::Chat(chat) => ChatRule {
                chat,
                role: Role::Member,
                allow_restricted: false,
            },
            ChatRuleSpec::Table(t) => ChatRule {
                chat: t.chat,
                role: t.role,
                allow_restricted: t.allow_restricted,
            },
        }
    }
}

/// A user's standing in a chat, as `getChatMember` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Creator,
    Administrator,
    Member,
    /// Muted or otherwise limited; `is_member` says whether they are still in the chat.
    Restricted {
        is_member: bool,
    },
    Left,
    Kicked,
}

impl MemberStatus {
    /// Reads the Bot API's `status` (and `is_member` of a restricted member).
    pub fn from_bot_api(status: &str, is_member: Option<bool>) -> Option<MemberStatus> {
        Some(match status {
            "creator" => MemberStatus::Creator,
            "administrator" => MemberStatus::Administrator,
            "member" => MemberStatus::Member,
            "restricted" => MemberStatus::Restricted {
                is_member: is_member.unwrap_or(false),
            },
            "left" => MemberStatus::Left,
            "kicked" => MemberStatus::Kicked,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Creator => "creator",
            MemberStatus::Administrator => "administrator",
            MemberStatus::Member => "member",
            MemberStatus::Restricted { .. } => "restricted",
            MemberStatus::Left => "left",
            MemberStatus::Kicked => "kicked",
        }
    }

    /// Whether this standing meets `role`.
    pub fn meets(self, role: Role, allow_restricted: bool) -> bool {
        match (self, role) {
            (MemberStatus::Creator | MemberStatus::Administrator, _) => true,
            (MemberStatus::Member, Role::Member) => true,
            (MemberStatus::Restricted { is_member }, Role::Member) => allow_restricted && is_member,
            _ => false,
        }
    }
}

/// What a rule is asked about: the user, as the gate knows them.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    pub telegram_id: i64,
    pub username: Option<&'a str>,
    pub is_premium: bool,
    pub language_code: Option<&'a str>,
}

/// A policy's answer for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refused; the text names the rule that refused, for the server log.
    Refuse(String),
    /// The membership of this chat was needed and could not be learned.
    Unknown(i64),
}

impl Rule {
    /// Reads a policy file: a `[policy]` table that is one rule.
    pub fn from_toml(text: &str) -> Result<Rule, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PolicyFile {
            policy: Rule,
        }
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| format!("the policy file is not a valid policy: {e}"))?;
        file.policy.check()?;
        Ok(file.policy)
    }

    /// Reads a policy in its stored form (JSON), checked as a file would be.
    pub fn from_json(text: &str) -> Result<Rule, String> {
        let rule: Rule =
            serde_json::from_str(text).map_err(|e| format!("not a valid policy: {e}"))?;
        rule.check()?;
        Ok(rule)
    }

    /// Checks what serde cannot: lists not empty, names well formed, size and depth bounded.
    pub fn check(&self) -> Result<(), String> {
        let mut entries = 0;
        self.check_at(1, &mut entries)
    }

    fn check_at(&self, depth: usize, entries: &mut usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("the policy nests deeper than {MAX_DEPTH} levels"));
        }
        *entries += 1 + match self {
            Rule::Ids(v) => v.len(),
            Rule::Usernames(v) | Rule::Languages(v) => v.len(),
            Rule::All(v) | Rule::Any(v) => v.len(),
            _ => 0,
        };
        if *entries > MAX_ENTRIES {
            return Err(format!(
                "the policy has more than {MAX_ENTRIES} rules and entries"
            ));
        }
        match self {
            Rule::Ids(ids) => {
                non_empty("ids", ids)?;
                if let Some(bad) = ids.iter().find(|id| **id <= 0) {
                    return Err(format!("ids: `{bad}` is not a Telegram user id"));
                }
            }
            Rule::Usernames(names) => {
                non_empty("usernames", names)?;
                for name in names {
                    let bare = name.strip_prefix('@').unwrap_or(name);
                    let ok = (4..=32).contains(&bare.len())
                        && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        return Err(format!(
                            "usernames: `{name}` is not a Telegram username (4 to 32 letters, digits or _)"
                        ));
                    }
                }
            }
            Rule::Languages(codes) => {
                non_empty("languages", codes)?;
                for code in codes {
                    let ok = (2..=16).contains(&code.len())
                        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    if !ok {
                        return Err(format!(
                            "languages: `{code}` is not a language code such as en or pt-BR"
                        ));
                    }
                }
            }
            Rule::MemberOf(chat) => {
                if chat.chat == 0 {
                    return Err("member_of: 0 is not a chat id".into());
                }
            }
            Rule::Premium(_) => {}
            Rule::All(rules) | Rule::Any(rules) => {
                non_empty(
                    if matches!(self, Rule::All(_)) {
                        "all"
                    } else {
                        "any"
                    },
                    rules,
                )?;
                for rule in rules {
                    rule.check_at(depth + 1, entries)?;
                }
            }
            Rule::Not(rule) => rule.check_at(depth + 1, entries)?,
        }
        Ok(())
    }

    /// Every chat whose membership this rule may ask about.
    pub fn chats(&self) -> Vec<i64> {
        let mut out = Vec::new();
        self.collect_chats(&mut out);
        out
    }

    fn collect_chats(&self, out: &mut Vec<i64>) {
        match self {
            Rule::MemberOf(c) if !out.contains(&c.chat) => out.push(c.chat),
            Rule::All(rules) | Rule::Any(rules) => {
                rules.iter().for_each(|r| r.collect_chats(out));
            }
            Rule::Not(rule) => rule.collect_chats(out),
            _ => {}
        }
    }

    /// The answer for `person`, with `membership` telling their standing in a chat (`None`: it
    /// could not be learned). Three-valued: an unknown membership decides only when the rest
    /// of the rule cannot.
    pub fn evaluate(
        &self,
        person: &Person<'_>,
        membership: &dyn Fn(i64) -> Option<MemberStatus>,
    ) -> Verdict {
        match self {
            Rule::Ids(ids) => holds(ids.contains(&person.telegram_id), || "ids".into()),
            Rule::Usernames(names) => {
                let matched = person.username.is_some_and(|u| {
                    names
                        .iter()
                        .any(|n| n.strip_prefix('@').unwrap_or(n).eq_ignore_ascii_case(u))
                });
                holds(matched, || "usernames".into())
            }
            Rule::Premium(wanted) => holds(person.is_premium == *wanted, || {
                format!("premium = {wanted}")
            }),
            Rule::Languages(codes) => {
                let matched = person.language_code.is_some_and(|lang| {
                    codes.iter().any(|c| {
                        lang.eq_ignore_ascii_case(c)
                            || lang
                                .split_once('-')
                                .is_some_and(|(primary, _)| primary.eq_ignore_ascii_case(c))
                    })
                });
                holds(matched, || "languages".into())
            }
            Rule::MemberOf(rule) => match membership(rule.chat) {
                None => Verdict::Unknown(rule.chat),
                Some(status) => holds(status.meets(rule.role, rule.allow_restricted), || {
                    let role = match rule.role {
                        Role::Member => "",
                        Role::Administrator => " as administrator",
                    };
                    format!("member_of {}{role} (status {})", rule.chat, status.as_str())
                }),
            },
            Rule::All(rules) => {
                let mut unknown = None;
                for rule in rules {
                    match rule.evaluate(person, membership) {
                        Verdict::Admit => {}
                        refused @ Verdict::Refuse(_) => return refused,
                        Verdict::Unknown(chat) => unknown = unknown.or(Some(chat)),
                    }
                }
                unknown.map_or(Verdict::Admit, Verdict::Unknown)
            }
            Rule::Any(rules) => {
                let mut unknown = None;
                let mut refusals = Vec::new();
                for rule in rules {
                    match rule.evaluate(person, membership) {
                        Verdict::Admit => return Verdict::Admit,
                        Verdict::Refuse(why) => refusals.push(why),
                        Verdict::Unknown(chat) => unknown = unknown.or(Some(chat)),
                    }
                }
                match unknown {
                    Some(chat) => Verdict::Unknown(chat),
                    None => Verdict::Refuse(format!("any [{}]", refusals.join("; "))),
                }
            }
            Rule::Not(rule) => match rule.evaluate(person, membership) {
                Verdict::Admit => Verdict::Refuse(format!("not ({})", rule.describe())),
                Verdict::Refuse(_) => Verdict::Admit,
                unknown @ Verdict::Unknown(_) => unknown,
            },
        }
    }

    /// A short name of the rule, for the log.
    fn describe(&self) -> String {
        match self {
            Rule::Ids(_) => "ids".into(),
            Rule::Usernames(_) => "usernames".into(),
            Rule::Premium(w) => format!("premium = {w}"),
            Rule::Languages(_) => "languages".into(),
            Rule::MemberOf(c) => format!("member_of {}", c.chat),
            Rule::All(_) => "all".into(),
            Rule::Any(_) => "any".into(),
            Rule::Not(r) => format!("not ({})", r.describe()),
        }
    }
}

fn holds(ok: bool, why: impl FnOnce() -> String) -> Verdict {
    if ok {
        Verdict::Admit
    } else {
        Verdict::Refuse(why())
    }
}

fn non_empty<T>(name: &str, list: &[T]) -> Result<(), String> {
    if list.is_empty() {
        Err(format!("{name}: the list is empty"))
    } else {
        Ok(())
    }
}

/// A configured group: a chat, and the role in it that makes a member of the group. Written
/// `"-1001234567890"` or `"-1001234567890:administrator"` (a bare number is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GroupSpecText", into = "String")]
pub struct GroupSpec {
    pub chat: i64,
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GroupSpecText {
    Number(i64),
    Text(String),
}

impl TryFrom<GroupSpecText> for GroupSpec {
    type Error = String;
    fn try_from(value: GroupSpecText) -> Result<Self, String> {
        match value {
            GroupSpecText::Number(chat) => GroupSpec::parse(&chat.to_string()),
            GroupSpecText::Text(text) => GroupSpec::parse(&text),
        }
    }
}

impl From<GroupSpec> for String {
    fn from(spec: GroupSpec) -> String {
        match spec.role {
            Role::Member => spec.chat.to_string(),
            Role::Administrator => format!("{}:administrator", spec.chat),
        }
    }
}

impl GroupSpec {
    pub fn parse(text: &str) -> Result<GroupSpec, String> {
        let (chat, role) = match text.trim().split_once(':') {
            Some((chat, "administrator")) => (chat, Role::Administrator),
            Some((chat, "member")) => (chat, Role::Member),
            Some((_, other)) => {
                return Err(format!(
                    "group `{text}`: `{other}` is not a role (member or administrator)"
                ));
            }
            None => (text.trim(), Role::Member),
        };
        match chat.parse::<i64>() {
            Ok(chat) if chat != 0 => Ok(GroupSpec { chat, role }),
            _ => Err(format!(
                "group `{text}`: write a chat id, e.g. \"-1001234567890\" or \"-1001234567890:administrator\""
            )),
        }
    }

    /// Whether someone of this standing belongs to the group (restricted members do not).
    pub fn holds(self, status: MemberStatus) -> bool {
        status.meets(self.role, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: i64) -> Person<'static> {
        Person {
            telegram_id: id,
            username: Some("Ada_Tg"),
            is_premium: false,
            language_code: Some("en-US"),
        }
    }

    fn table(status: MemberStatus) -> impl Fn(i64) -> Option<MemberStatus> {
        move |chat| (chat == -100).then_some(status)
    }

    #[test]
    fn toml_and_json_are_one_format() {
        let rule = Rule::from_toml(
            "[policy]\nany = [{ ids = [1, 2] }, { member_of = -100 }, { member_of = { chat = -200, role = \"administrator\" } }]\n",
        )
        .unwrap();
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(Rule::from_json(&json).unwrap(), rule);
        let Rule::Any(rules) = &rule else { panic!() };
        assert_eq!(
            rules[2],
            Rule::MemberOf(ChatRule {
                chat: -200,
                role: Role::Administrator,
                allow_restricted: false
            })
        );
    }

    #[test]
    fn leaves_decide_as_documented() {
        let none = |_: i64| -> Option<MemberStatus> { None };
        let p = person(7);
        assert_eq!(Rule::Ids(vec![7]).evaluate(&p, &none), Verdict::Admit);
        assert!(matches!(
            Rule::Ids(vec![8]).evaluate(&p, &none),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            Rule::Usernames(vec!["@ADA_tg".into()]).evaluate(&p, &none),
            Verdict::Admit
        );
        assert_eq!(
            Rule::Languages(vec!["en".into()]).evaluate(&p, &none),
            Verdict::Admit
        );
        assert!(matches!(
            Rule::Languages(vec!["ru".into()]).evaluate(&p, &none),
            Verdict::Refuse(_)
        ));
        assert_eq!(Rule::Premium(false).evaluate(&p, &none), Verdict::Admit);
        assert!(matches!(
            Rule::Premium(true).evaluate(&p, &none),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn membership_statuses() {
        let p = person(7);
        let member = |allow_restricted: bool, role: Role| {
            Rule::MemberOf(ChatRule {
                chat: -100,
                role,
                allow_restricted,
            })
        };
        for (status, as_member, as_admin) in [
            (MemberStatus::Creator, true, true),
            (MemberStatus::Administrator, true, true),
            (MemberStatus::Member, true, false),
            (MemberStatus::Restricted { is_member: true }, false, false),
            (MemberStatus::Left, false, false),
            (MemberStatus::Kicked, false, false),
        ] {
            let got = member(false, Role::Member).evaluate(&p, &table(status));
            assert_eq!(got == Verdict::Admit, as_member, "{status:?}");
            let got = member(false, Role::Administrator).evaluate(&p, &table(status));
            assert_eq!(got == Verdict::Admit, as_admin, "{status:?}");
        }
        let restricted = MemberStatus::Restricted { is_member: true };
        assert_eq!(
            member(true, Role::Member).evaluate(&p, &table(restricted)),
            Verdict::Admit
        );
        let gone = MemberStatus::Restricted { is_member: false };
        assert!(matches!(
            member(true, Role::Member).evaluate(&p, &table(gone)),
            Verdict::Refuse(_)
        ));
        let Verdict::Refuse(why) =
            member(false, Role::Member).evaluate(&p, &table(MemberStatus::Left))
        else {
            panic!()
        };
        assert_eq!(why, "member_of -100 (status left)");
    }

    #[test]
    fn combinators_are_three_valued() {
        let p = person(7);
        let unknown = |_: i64| -> Option<MemberStatus> { None };
        let chat = Rule::MemberOf(ChatRule {
            chat: -100,
            role: Role::Member,
            allow_restricted: false,
        });
        // An id that admits decides `any` without the chat.
        let any = Rule::Any(vec![Rule::Ids(vec![7]), chat.clone()]);
        assert_eq!(any.evaluate(&p, &unknown), Verdict::Admit);
        // Otherwise the unknown chat makes the answer unknown, never a refusal or an admission.
        let any = Rule::Any(vec![Rule::Ids(vec![8]), chat.clone()]);
        assert_eq!(any.evaluate(&p, &unknown), Verdict::Unknown(-100));
        // A refusing rule decides `all`.
        let all = Rule::All(vec![chat.clone(), Rule::Ids(vec![8])]);
        assert!(matches!(all.evaluate(&p, &unknown), Verdict::Refuse(_)));
        let not = Rule::Not(Box::new(Rule::Ids(vec![7])));
        assert_eq!(
            not.evaluate(&p, &unknown),
            Verdict::Refuse("not (ids)".into())
        );
        assert_eq!(
            Rule::Not(Box::new(chat.clone())).evaluate(&p, &unknown),
            Verdict::Unknown(-100)
        );
        let any = Rule::Any(vec![Rule::Ids(vec![8]), chat]);
        assert_eq!(
            any.evaluate(&p, &table(MemberStatus::Kicked)),
            Verdict::Refuse("any [ids; member_of -100 (status kicked)]".into())
        );
        assert_eq!(any.chats(), vec![-100]);
    }

    #[test]
    fn bad_policy_files_say_what_is_wrong() {
        let cases = [
            ("[policy]\nids = [\n", "not a valid policy"),
            ("[policy]\nmembers = [1]\n", "unknown variant `members`"),
            ("[policy]\nids = []\n", "ids: the list is empty"),
            ("[policy]\nids = [-5]\n", "not a Telegram user id"),
            (
                "[policy]\nusernames = [\"a b\"]\n",
                "not a Telegram username",
            ),
            ("[policy]\nlanguages = [\"e n\"]\n", "not a language code"),
            ("[policy]\nmember_of = \"team\"\n", "a chat id such as"),
            (
                "[policy]\nmember_of = { chat = -1, admin = true }\n",
                "a chat id such as",
            ),
            ("[policy]\nany = []\n", "any: the list is empty"),
            ("policy = 1\n", "not a valid policy"),
            ("[other]\nids = [1]\n", "not a valid policy"),
            (
                "[policy]\nids = [1]\nusernames = [\"abcd\"]\n",
                "not a valid policy",
            ),
        ];
        for (text, expected) in cases {
            let err = Rule::from_toml(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let mut deep = "{ ids = [1] }".to_string();
        for _ in 0..9 {
            deep = format!("{{ not = {deep} }}");
        }
        let err = Rule::from_toml(&format!("[policy]\nall = [{deep}]\n")).unwrap_err();
        assert!(err.contains("nests deeper"), "{err}");
    }

    #[test]
    fn group_specs() {
        assert_eq!(
            GroupSpec::parse("-1001:administrator").unwrap(),
            GroupSpec {
                chat: -1001,
                role: Role::Administrator
            }
        );
        assert_eq!(GroupSpec::parse("-1001").unwrap().role, Role::Member);
        assert!(GroupSpec::parse("-1001:owner").is_err());
        assert!(GroupSpec::parse("team").is_err());
        let spec = GroupSpec::parse("-5").unwrap();
        assert!(spec.holds(MemberStatus::Member));
        assert!(!spec.holds(MemberStatus::Restricted { is_member: true }));
    }
}
