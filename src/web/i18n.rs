//! The pages' language: English or Russian, chosen per request from `Accept-Language`
//! (RFC 9110 §12.5.4), since so many Telegram users read Russian.
//!
//! English text is its own message id, as in gettext: templates write
//! `{{ self::t("Deny") }}` (the page's module imports [`t`]) and messages built in Rust pass
//! through the same lookup when a page shows them. Text without a translation stays English.
//! The language is set once per request by [`negotiate`], a middleware, and read where a page
//! is rendered, so handlers need not carry it.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    /// The BCP 47 tag, for `<html lang>` and `Content-Language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    /// The best supported language of an `Accept-Language` value; English when none fits.
    pub fn from_accept_language(value: &str) -> Lang {
        let mut best = (Lang::En, 0.0_f32);
        for item in value.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "ru" => Lang::Ru,
                "en" => Lang::En,
                _ => continue,
            };
            // Equal weights keep the first listed: the user's order breaks ties.
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }
}

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being served (English outside a request).
pub fn current() -> Lang {
    LANG.try_with(|l| *l).unwrap_or(Lang::En)
}

/// Middleware: serves the request in the language its `Accept-Language` prefers.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let lang = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Lang::En, Lang::from_accept_language);
    let mut response = LANG.scope(lang, next.run(request)).await;
    let headers = response.headers_mut();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.code()),
        );
        headers.append(header::VARY, HeaderValue::from_static("Accept-Language"));
    }
    response
}

/// `<html lang>` of the page being rendered.
pub fn lang() -> &'static str {
    current().code()
}

/// `text` in the request's language.
pub fn t(text: &str) -> &str {
    match current() {
        Lang::En => text,
        Lang::Ru => russian(text).unwrap_or(text),
    }
}

/// `text` in the request's language with `{}` replaced by `value`.
pub fn tf(text: &str, value: &str) -> String {
    t(text).replacen("{}", value, 1)
}

fn russian(text: &str) -> Option<&'static str> {
    Some(match text {
        // base.html
        "Telegram login" => "Вход через Telegram",
        // login.html
        "Sign in" => "Вход",
        "Sign in to {}" => "Вход в {}",
        "{} asks you to confirm who you are with your Telegram account." => {
            "{} просит подтвердить, кто вы, с помощью аккаунта Telegram."
        }
        "Log in with Telegram" => "Войти через Telegram",
        "Or use the Telegram login button:" => "Или воспользуйтесь кнопкой входа Telegram:",
        "Development mode: Telegram is replaced by a local emulator that signs login data exactly as Telegram does." => {
            "Режим разработки: вместо Telegram работает локальный эмулятор, который подписывает данные входа так же, как Telegram."
        }
        "Log in with the Telegram emulator" => "Войти через эмулятор Telegram",
        "The Telegram login button needs JavaScript." => {
            "Для кнопки входа Telegram нужен JavaScript."
        }
        "The other ways on this page work without it." => {
            "Остальные способы на этой странице работают и без него."
        }
        "The Telegram login button did not load. telegram.org may be blocked on this network or by a browser extension." => {
            "Кнопка входа Telegram не загрузилась. Возможно, telegram.org заблокирован в этой сети или расширением браузера."
        }
        "Log in another way:" => "Войдите другим способом:",
        "Log in via the Telegram bot" => "Войти через бота Telegram",
        "(below, with a QR code for your phone)" => "(ниже, с QR-кодом для телефона)",
        "Try another network or browser, or ask the administrator of this sign-in service to turn on the login through the bot." => {
            "Попробуйте другую сеть или браузер или попросите администратора этого сервиса входа включить вход через бота."
        }
        "Your Telegram id, name, username and photo are shared with this sign-in service, and your phone number if you agree at Telegram. Your messages are not." => {
            "Этот сервис входа получит ваш id в Telegram, имя, имя пользователя и фото, а номер телефона — если вы согласитесь в Telegram. Ваши сообщения он не получит."
        }
        "Only your Telegram id, name, username and photo are shared with this sign-in service. Your phone number and messages are not." => {
            "Этот сервис входа получит только ваш id в Telegram, имя, имя пользователя и фото. Номер телефона и сообщения он не получит."
        }
        // consent.html, device_confirm.html
        "Allow access" => "Разрешить доступ",
        "{} wants to use your Telegram account" => "{} хочет использовать ваш аккаунт Telegram",
        "Signed in as" => "Вы вошли как",
        "App" => "Приложение",
        "The address this app receives your answer at" => {
            "Адрес, на который приложение получит ваш ответ"
        }
        "Not you?" => "Это не вы?",
        "Not you? Sign out" => "Это не вы? Выйти",
        "Confirm in Telegram" => "Подтвердите в Telegram",
        "{} asks you to confirm this login in your Telegram chat with the bot as well." => {
            "{} просит также подтвердить этот вход в чате с ботом в Telegram."
        }
        "If you allow it, {} will get:" => "Если вы разрешите, {} получит:",
        "Deny" => "Отклонить",
        "Allow" => "Разрешить",
        "Approve" => "Подтвердить",
        "Confirm that you are you, with your Telegram account" => {
            "Подтверждение, что это вы, через аккаунт Telegram"
        }
        "Your name, username and profile photo" => "Ваше имя, имя пользователя и фото профиля",
        "Your numeric Telegram id and username" => "Ваш числовой id в Telegram и имя пользователя",
        "Stay signed in when you are not using it" => {
            "Доступ, даже когда вы не пользуетесь приложением"
        }
        "An email address made for this app (Telegram has no email)" => {
            "Адрес почты, созданный для этого приложения (в Telegram нет почты)"
        }
        "Your phone number, if you shared it with Telegram" => {
            "Ваш номер телефона, если вы поделились им в Telegram"
        }
        // emulator.html
        "Telegram emulator" => "Эмулятор Telegram",
        "Development mode only. What you type here is signed with the development bot token exactly as Telegram signs Login Widget data, and sent to the same callback the real widget uses." => {
            "Только в режиме разработки. Введённые здесь данные подписываются токеном бота для разработки так же, как Telegram подписывает данные виджета входа, и отправляются на тот же адрес, что и у настоящего виджета."
        }
        "Telegram id" => "Id в Telegram",
        "First name" => "Имя",
        "Last name" => "Фамилия",
        "Username" => "Имя пользователя",
        "Log in as this Telegram user" => "Войти как этот пользователь Telegram",
        // error.html, message.html
        "If you came here from an app, go back to it and try again." => {
            "Если вы пришли сюда из приложения, вернитесь в него и попробуйте снова."
        }
        // logout.html
        "Sign out" => "Выйти",
        "Sign out?" => "Выйти?",
        "{} asks to end your Telegram sign-in on this device. Apps you signed in to are told." => {
            "{} просит завершить ваш вход через Telegram на этом устройстве. Приложения, в которые вы входили, получат уведомление."
        }
        "End your Telegram sign-in on this device. Apps you signed in to are told." => {
            "Завершить вход через Telegram на этом устройстве. Приложения, в которые вы входили, получат уведомление."
        }
        "Stay signed in" => "Остаться в системе",
        "You are signed out" => "Вы вышли",
        "Your Telegram sign-in on this device has ended." => {
            "Ваш вход через Telegram на этом устройстве завершён."
        }
        "You are still signed in" => "Вы всё ещё в системе",
        "Nothing was changed. You can close this page." => {
            "Ничего не изменилось. Эту страницу можно закрыть."
        }
        // device.html, device_confirm.html
        "Sign in a device" => "Вход на устройстве",
        "Enter the code your TV, console or command line shows." => {
            "Введите код, который показывает телевизор, приставка или командная строка."
        }
        "Code" => "Код",
        "Continue" => "Продолжить",
        "Next you log in with Telegram, then choose whether the device may use your account." => {
            "Затем вы войдёте через Telegram и решите, может ли устройство пользоваться вашим аккаунтом."
        }
        "Sign in {} on your device?" => "Войти в {} на вашем устройстве?",
        "Approve only if you started this on your own device just now. {} will get:" => {
            "Подтверждайте, только если вы сами только что начали вход на своём устройстве. {} получит:"
        }
        // form_post.html
        "Returning to the app" => "Возврат в приложение",
        "Continue to the app" => "Перейти в приложение",
        // Error pages built in Rust.
        "Not found" => "Не найдено",
        "There is nothing at this address." => "По этому адресу ничего нет.",
        "Something went wrong" => "Что-то пошло не так",
        "This sign-in request cannot be used" => "Этот запрос на вход нельзя использовать",
        "This sign-out request cannot be used" => "Этот запрос на выход нельзя использовать",
        "The app that sent you here is not registered." => {
            "Приложение, которое направило вас сюда, не зарегистрировано."
        }
        "The app that sent you here is no longer registered." => {
            "Приложение, которое направило вас сюда, больше не зарегистрировано."
        }
        "The request does not name an app (client_id is missing)." => {
            "В запросе не указано приложение (нет client_id)."
        }
        "The request has no redirect_uri." => "В запросе нет redirect_uri.",
        "This sign-in has expired" => "Время на вход истекло",
        "This sign-in has expired. Go back to the app and start again." => {
            "Время на вход истекло. Вернитесь в приложение и начните снова."
        }
        "Go back to the app and sign in again." => "Вернитесь в приложение и войдите снова.",
        "Go back to the app and start signing in again." => {
            "Вернитесь в приложение и начните вход заново."
        }
        "Sign-in cancelled" => "Вход отменён",
        "Telegram login refused" => "Вход через Telegram отклонён",
        "You cannot sign in to this app" => "Вы не можете войти в это приложение",
        "The app's administrator has not let this Telegram account in." => {
            "Администратор приложения не разрешил вход этому аккаунту Telegram."
        }
        "Telegram could not be asked" => "Не удалось получить ответ от Telegram",
        "Telegram could not be asked whether this account may sign in. Please try again in a few minutes." => {
            "Не удалось узнать у Telegram, можно ли этому аккаунту войти. Попробуйте ещё раз через несколько минут."
        }
        "Which of this service's team chats you are in" => {
            "В каких командных чатах этого сервиса вы состоите"
        }
        "The Telegram login could not be completed" => "Не удалось завершить вход через Telegram",
        "The Telegram login could not be read" => "Не удалось прочитать данные входа Telegram",
        "This Telegram login was already used. Please log in again." => {
            "Эти данные входа Telegram уже использованы. Войдите снова."
        }
        "The answer could not be read" => "Не удалось прочитать ответ",
        "This answer was not accepted" => "Этот ответ не принят",
        "Choose Allow or Deny." => "Выберите «Разрешить» или «Отклонить».",
        "Choose Approve or Deny." => "Выберите «Подтвердить» или «Отклонить».",
        "This device sign-in has expired" => "Время на вход на устройстве истекло",
        "Start again on the device to get a new code." => {
            "Начните снова на устройстве, чтобы получить новый код."
        }
        "The address to return to after signing out is not registered for this app." => {
            "Адрес возврата после выхода не зарегистрирован для этого приложения."
        }
        // account.html and the account page's messages.
        "Your Telegram sign-ins" => "Ваши входы через Telegram",
        "your account" => "ваш аккаунт",
        "Apps" => "Приложения",
        "You have not given any app access with your Telegram account." => {
            "Вы не давали приложениям доступ через аккаунт Telegram."
        }
        "Allowed:" => "Разрешено:",
        "Last used:" => "Последнее использование:",
        "Revoke" => "Отозвать",
        "Signed-in browsers" => "Браузеры, где выполнен вход",
        "this browser" => "этот браузер",
        "Near" => "Примерно",
        "Signed in:" => "Вход:",
        "Sign out everywhere" => "Выйти везде",
        "Unknown browser" => "Неизвестный браузер",
        "Login alerts" => "Уведомления о входе",
        "On: the bot tells you of every login with your Telegram account." => {
            "Включены: бот сообщает о каждом входе с вашим аккаунтом Telegram."
        }
        "Off." => "Выключены.",
        "Send /alerts on or /alerts off to @{} to change this." => {
            "Чтобы изменить это, отправьте /alerts on или /alerts off боту @{}."
        }
        "The app's access was revoked: its sign-ins and tokens have ended." => {
            "Доступ приложения отозван: его входы и токены больше не действуют."
        }
        "That browser was signed out." => "Выход в том браузере выполнен.",
        "That was already gone." => "Этого уже нет.",
        "You are signed out in this browser." => "Вы вышли в этом браузере.",
        "Every browser signed in with your Telegram account, this one included, is signed out." => {
            "Выполнен выход во всех браузерах, где вы входили с аккаунтом Telegram, включая этот."
        }
        "It did not come from the account page shown in this browser. Open the account page again." => {
            "Он отправлен не со страницы аккаунта, открытой в этом браузере. Откройте страницу аккаунта снова."
        }
        "A field appears more than once." => "Поле указано больше одного раза.",
        "Choose one of the page's buttons." => "Нажмите одну из кнопок на странице.",
        "You pressed Deny in Telegram. You were not signed in." => {
            "Вы нажали «Отклонить» в Telegram. Вход не выполнен."
        }
        // the admin desk (admin*.html, web::admin_desk)
        "A blocked user passes no login, and every grant, token, consent and session they hold ends at once." => {
            "Заблокированный пользователь не может войти, а все его разрешения, токены, согласия и сеансы сразу прекращаются."
        }
        "A new secret replaces the old one at once: the app stops working until it has the new one." => {
            "Новый секрет сразу заменяет старый: приложение не будет работать, пока не получит новый."
        }
        "Access tokens" => "Токены доступа",
        "Address" => "Адрес",
        "Admin desk" => "Панель администратора",
        "Algorithm" => "Алгоритм",
        "Allow the device flow (TVs, CLIs)" => "Разрешить вход с устройств (телевизоры, CLI)",
        "Audit log" => "Журнал аудита",
        "Block" => "Заблокировать",
        "Blocked since" => "Заблокирован с",
        "By" => "Кто",
        "Cancel" => "Отмена",
        "Client id" => "Идентификатор клиента",
        "Client secret" => "Секрет клиента",
        "Confidential (a server that keeps a secret)" => {
            "Конфиденциальное (сервер, хранящий секрет)"
        }
        "Detail" => "Подробности",
        "Empty: every Telegram user. A [policy] table as in a policy file, or its JSON." => {
            "Пусто: любой пользователь Telegram. Таблица [policy], как в файле политики, или её JSON."
        }
        "End all sessions and grants" => "Завершить все сеансы и разрешения",
        "Event" => "Событие",
        "Every login is also confirmed in the bot chat" => {
            "Каждый вход дополнительно подтверждается в чате с ботом"
        }
        "Filter" => "Отобрать",
        "First login" => "Первый вход",
        "ID token signed with" => "Подпись ID-токена",
        "Key id" => "Идентификатор ключа",
        "Last login" => "Последний вход",
        "Made" => "Создан",
        "Make a new key" => "Создать новый ключ",
        "Name" => "Название",
        "New app" => "Новое приложение",
        "Next page" => "Следующая страница",
        "No app holds anything of this user." => {
            "Ни у одного приложения нет доступа от этого пользователя."
        }
        "No apps are registered yet." => "Приложений пока нет.",
        "No browser is signed in." => "Нет браузеров со входом.",
        "No user found." => "Пользователь не найден.",
        "Nothing recorded matches." => "Подходящих записей нет.",
        "Older entries" => "Более ранние записи",
        "One per line, exactly as the app sends them." => {
            "По одному в строке, точно так, как их передаёт приложение."
        }
        "Only its hash is stored: it cannot be shown again. Rotate it if it is lost." => {
            "Хранится только его хеш: повторно его показать нельзя. Если он утерян, выпустите новый."
        }
        "Public (a browser or mobile app; PKCE, no secret)" => {
            "Публичное (браузерное или мобильное приложение; PKCE, без секрета)"
        }
        "Redirect URIs" => "Адреса перенаправления",
        "Register the app" => "Зарегистрировать приложение",
        "Registered" => "Зарегистрировано",
        "Remove the app" => "Удалить приложение",
        "Remove this app: its tokens stop working at once." => {
            "Удалить это приложение: его токены сразу перестанут действовать."
        }
        "Remove" => "Удаление",
        "Result" => "Итог",
        "Rotate the secret" => "Выпустить новый секрет",
        "Rotate" => "Смена ключа",
        "Save" => "Сохранить",
        "Scopes" => "Области доступа",
        "Search" => "Найти",
        "Service account (client credentials)" => "Сервисная учётная запись (client credentials)",
        "Settings" => "Настройки",
        "Shown to users on the login and consent pages." => {
            "Показывается пользователям на страницах входа и согласия."
        }
        "Signing keys" => "Ключи подписи",
        "Skip the consent page (a first-party app)" => {
            "Пропускать страницу согласия (собственное приложение)"
        }
        "Start signing after (seconds)" => "Начать подписывать через (секунд)",
        "State" => "Состояние",
        "Telegram id or @username" => "Telegram id или @username",
        "The new key is published at once and signs only after this delay, so that every app caching the key set has it first." => {
            "Новый ключ публикуется сразу, а подписывать начинает только после этой задержки, чтобы все приложения, кэширующие набор ключей, успели его получить."
        }
        "This user in the audit log" => "Этот пользователь в журнале аудита",
        "Time (UTC)" => "Время (UTC)",
        "Type" => "Тип",
        "Unblock" => "Разблокировать",
        "User" => "Пользователь",
        "Users" => "Пользователи",
        "Who may enter (access policy)" => "Кто может войти (политика доступа)",
        "Who may enter" => "Кто может войти",
        "blocked" => "заблокирован",
        "opaque" => "непрозрачные",
        "Service account" => "Сервисная учётная запись",
        "Public" => "Публичное",
        "Confidential" => "Конфиденциальное",
        "A policy" => "По политике",
        "Everyone" => "Все",
        "Saved." => "Сохранено.",
        "The app was removed; its tokens no longer work." => {
            "Приложение удалено; его токены больше не действуют."
        }
        "The user is blocked: they pass no login, and everything they held has ended." => {
            "Пользователь заблокирован: он не сможет войти, а всё, что у него было, прекращено."
        }
        "The user may log in again." => "Пользователь снова может входить.",
        "Revoked." => "Отозвано.",
        "A new signing key was made." => "Создан новый ключ подписи.",
        "Copy the secret now: it is shown this once." => {
            "Скопируйте секрет сейчас: он показывается только один раз."
        }
        "allowed" => "разрешено",
        "Device flow" => "Вход с устройств",
        "Backchannel authentication (CIBA)" => "Обратная аутентификация (CIBA)",
        "Registered by" => "Кем зарегистрировано",
        "the app itself (dynamic registration)" => "самим приложением (динамическая регистрация)",
        "Signs" => "Подписывает",
        "Published" => "Опубликован",
        "Retired" => "Выведен",
        "signs from" => "подписывает с",
        "since" => "с",
        "the admin desk" => "панель администратора",
        "Not an admin" => "Нет прав администратора",
        "This Telegram account is not an admin of this login provider." => {
            "Этот аккаунт Telegram не является администратором этого сервиса входа."
        }
        "The admin desk is off" => "Панель администратора выключена",
        "Name the admins in the settings (admin.telegram_ids or admin.chat_id) to use it." => {
            "Чтобы ею пользоваться, укажите администраторов в настройках (admin.telegram_ids или admin.chat_id)."
        }
        "Not from this address" => "Не с этого адреса",
        "The admin desk is not served to this address." => {
            "Панель администратора недоступна с этого адреса."
        }
        "You are signed out of the admin desk." => "Вы вышли из панели администратора.",
        "Signed out of the admin desk" => "Выход из панели администратора",
        "Your admin desk session has ended. Open the admin desk again to sign in." => {
            "Ваш сеанс в панели администратора закончился. Откройте панель снова, чтобы войти."
        }
        "The form could not be read" => "Не удалось прочитать форму",
        "This form was not accepted" => "Форма не принята",
        "It did not come from the admin desk shown in this browser. Open the page again." => {
            "Она отправлена не со страницы панели администратора, открытой в этом браузере. Откройте страницу снова."
        }
        "It is not there (any more). Go back and reload the list." => {
            "Этого (уже) нет. Вернитесь и обновите список."
        }
        "Changed by someone else" => "Изменено другим администратором",
        "Another admin changed this app since you opened the page. Open it again to see the change, then make yours." => {
            "Другой администратор изменил это приложение после того, как вы открыли страницу. Откройте её снова, чтобы увидеть изменение, и внесите своё."
        }
        "Not accepted" => "Не принято",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        let cases = [
            ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", Lang::Ru),
            ("en-US,en;q=0.9,ru;q=0.8", Lang::En),
            ("de-DE,de;q=0.9", Lang::En),
            ("de, ru;q=0.5", Lang::Ru),
            ("RU", Lang::Ru),
            ("en;q=0.2, ru;q=0.7", Lang::Ru),
            ("ru;q=0", Lang::En),
            ("ru;q=abc", Lang::En),
            ("ru;q=7", Lang::En),
            ("*", Lang::En),
            ("", Lang::En),
            ("uk, ru;q=0.8, en;q=0.8", Lang::Ru),
        ];
        for (header, expected) in cases {
            assert_eq!(Lang::from_accept_language(header), expected, "{header}");
        }
    }

    #[tokio::test]
    async fn text_follows_the_request_language() {
        assert_eq!(t("Deny"), "Deny");
        LANG.scope(Lang::Ru, async {
            assert_eq!(t("Deny"), "Отклонить");
            assert_eq!(tf("Sign in to {}", "Grafana"), "Вход в Grafana");
            assert_eq!(t("No translation for this"), "No translation for this");
            assert_eq!(lang(), "ru");
        })
        .await;
        assert_eq!(lang(), "en");
    }

    /// Every text a template asks for has a Russian translation.
    #[test]
    fn every_template_text_is_translated() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut missing = Vec::new();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("html") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for call in ["self::t(\"", "self::tf(\""] {
                for (start, _) in source.match_indices(call) {
                    let rest = &source[start + call.len()..];
                    let text = &rest[..rest.find('"').unwrap()];
                    seen += 1;
                    if russian(text).is_none() {
                        missing.push(format!("{}: {text}", path.display()));
                    }
                }
            }
        }
        assert!(seen > 20, "only {seen} texts found in the templates");
        assert!(missing.is_empty(), "untranslated: {missing:#?}");
    }
}
