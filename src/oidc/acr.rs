//! Authentication context (`acr`) and methods (`amr`, RFC 8176 style) of a login. A login's
//! methods are stored as one space-separated string (`telegram_widget telegram_bot`): the first
//! proof, then the confirmation in the bot chat when the app asked for one (step-up).

/// One Telegram proof: the widget, Telegram's own OpenID Connect, a Mini App, or the bot chat.
pub const ACR_TELEGRAM: &str = "urn:telegram-oidc:acr:telegram";
/// The login was also confirmed by the user pressing the right answer in the bot chat, or was
/// made there (a bot login, a device or backchannel request approved in the chat).
pub const ACR_BOT_CONFIRMED: &str = "urn:telegram-oidc:acr:bot-confirmed";
/// The `amr` value of a confirmation in the bot chat.
pub const AMR_BOT: &str = "telegram_bot";

/// Every `acr` this provider can assert, weakest first (discovery's `acr_values_supported`).
pub const SUPPORTED: [&str; 2] = [ACR_TELEGRAM, ACR_BOT_CONFIRMED];

/// The methods of a stored login, in order, each once.
pub fn methods(amr: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for m in amr.split_ascii_whitespace() {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Whether the login was confirmed in the bot chat.
pub fn is_bot_confirmed(amr: &str) -> bool {
    methods(amr).contains(&AMR_BOT)
}

/// The `acr` a login with these methods reached.
pub fn acr_of(amr: &str) -> &'static str {
    if is_bot_confirmed(amr) {
        ACR_BOT_CONFIRMED
    } else {
        ACR_TELEGRAM
    }
}

/// The methods after `then` was added to the login's `first` ones.
pub fn combine(first: &str, then: &str) -> String {
    let mut all = methods(first);
    all.extend(methods(then));
    methods(&all.join(" ")).join(" ")
}

/// Whether an `acr_values` request parameter (space-separated, in order of preference) asks for
/// the confirmation in the bot chat. Values this provider does not know are voluntary and
/// ignored (OpenID Connect Core §3.1.2.1).
pub fn asks_bot_confirmation(acr_values: &str) -> bool {
    acr_values
        .split_ascii_whitespace()
        .any(|v| v == ACR_BOT_CONFIRMED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_combine_in_order_once() {
        assert_eq!(
            combine("telegram_widget", AMR_BOT),
            "telegram_widget telegram_bot"
        );
        assert_eq!(combine("telegram_bot", AMR_BOT), "telegram_bot");
        assert_eq!(
            combine("telegram_oidc telegram_bot", "telegram_bot"),
            "telegram_oidc telegram_bot"
        );
        assert_eq!(methods("  a  b a "), vec!["a", "b"]);
    }

    #[test]
    fn acr_follows_the_bot_confirmation() {
        assert_eq!(acr_of("telegram_widget"), ACR_TELEGRAM);
        assert_eq!(acr_of("telegram_widget telegram_bot"), ACR_BOT_CONFIRMED);
        assert_eq!(acr_of("telegram_bot"), ACR_BOT_CONFIRMED);
        assert_eq!(acr_of("telegram_botx"), ACR_TELEGRAM);
        assert_eq!(acr_of("client_credentials"), ACR_TELEGRAM);
    }

    #[test]
    fn only_our_value_asks_for_the_bot() {
        assert!(asks_bot_confirmation(
            "urn:x:other urn:telegram-oidc:acr:bot-confirmed"
        ));
        assert!(!asks_bot_confirmation("urn:telegram-oidc:acr:telegram"));
        assert!(!asks_bot_confirmation(
            "urn:telegram-oidc:acr:bot-confirmedx"
        ));
        assert!(!asks_bot_confirmation(""));
    }
}
