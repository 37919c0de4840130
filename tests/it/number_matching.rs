//! Approvals in the bot chat that a phisher cannot use: the question names the app, its domain,
//! the requesting browser (or the device's code) and the time; the waiting page shows a number
//! the user must pick among three; a wrong number denies, "This wasn't me" ends the attempt, and
//! either is recorded; a second press changes nothing.

use reqwest::StatusCode;
use telegram_oidc::config::UpdateMode;

use crate::deeplink::{BotLogin, collect, continue_to_app, open_login_page, start, status};
use crate::device::{authorize_device, device_code, poll_error, public_client};
use crate::fake_bot_api::{
    Call, FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, buttons, deny_button, message,
    not_me_button, number_button,
};
use crate::harness::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn firefox() -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(FIREFOX)
            .build()
            .unwrap(),
    }
}

/// `/start` for the login the page offered; returns the question the bot sent.
async fn ask(app: &TestApp, fake: &FakeBotApi, user: &TgUser, login: &BotLogin) -> Call {
    let before = fake.calls("sendMessage").len();
    let resp = fake
        .deliver(
            app,
            &fake.update(start(user, &login.payload)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    fake.calls("sendMessage")[before].clone()
}

async fn press(app: &TestApp, fake: &FakeBotApi, user: &TgUser, data: &str) -> String {
    let edits = fake.calls("editMessageText").len();
    let answers = fake.calls("answerCallbackQuery").len();
    fake.deliver(
        app,
        &fake.update(button(user, user.id, 321, data)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(fake.calls("answerCallbackQuery").len(), answers + 1);
    match fake.calls("editMessageText").get(edits) {
        Some(edit) => edit.body["text"].as_str().unwrap().to_owned(),
        None => String::new(),
    }
}

/// A number the bot offers that is not the page's.
fn wrong_number(asked: &Call, login: &BotLogin) -> String {
    buttons(asked)
        .into_iter()
        .find(|d| d.starts_with("n:") && !d.ends_with(&format!(":{}", login.match_code)))
        .expect("a decoy number")
}

#[tokio::test]
async fn the_right_number_logs_in_and_the_question_says_who_asked() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = firefox();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_300_001);
    let asked = ask(&app, &fake, &user, &login).await;
    let text = asked.body["text"].as_str().unwrap();
    assert!(
        text.contains("Log in to Test App (app.example.test) as Ada (@ada_tg)?"),
        "{text}"
    );
    assert!(text.contains("Requested from: Firefox on Linux"), "{text}");
    let created = app
        .store
        .get_bot_login(&login.id)
        .await
        .unwrap()
        .unwrap()
        .created_at;
    let minute = time::OffsetDateTime::from_unix_timestamp(created)
        .unwrap()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap();
    assert!(text.contains(&format!("At: {minute}")), "{text}");
    assert!(text.contains("the number the login page shows"), "{text}");
    // Three numbers in one row, then Deny and "This wasn't me".
    let rows = asked.body["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 2);
    let numbers: Vec<i64> = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3);
    assert!(numbers.contains(&login.match_code), "{numbers:?}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let labels: Vec<&str> = rows[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Deny", "This wasn't me"]);

    // Without JavaScript, "continue" before the answer shows the number to press.
    let early = collect(&app, &browser, &login).await;
    let waiting = early.text().await.unwrap();
    assert!(
        waiting.contains(&format!(">{}<", login.match_code)),
        "{waiting}"
    );

    let edited = press(&app, &fake, &user, &number_button(&asked, login.match_code)).await;
    assert!(edited.starts_with("Approved"), "{edited}");
    assert_eq!(status(&app, &browser, &login.id).await.1, "approved");
    let stored = app.store.get_bot_login(&login.id).await.unwrap().unwrap();
    assert_eq!(stored.answer.as_deref(), Some("approve"));
    continue_to_app(&app, &browser, &login).await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_number_denies_and_a_second_press_changes_nothing() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_300_002);
    let asked = ask(&app, &fake, &user, &login).await;
    // No User-Agent: the question says nothing of a browser rather than something made up.
    assert!(
        !asked.body["text"]
            .as_str()
            .unwrap()
            .contains("Requested from")
    );

    let edited = press(&app, &fake, &user, &wrong_number(&asked, &login)).await;
    assert!(
        edited.starts_with("Refused: that is not the number the login page showed"),
        "{edited}"
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");
    let stored = app.store.get_bot_login(&login.id).await.unwrap().unwrap();
    assert_eq!(stored.answer.as_deref(), Some("wrong_number"));

    // The right number afterwards: already answered.
    let edited = press(&app, &fake, &user, &number_button(&asked, login.match_code)).await;
    assert_eq!(edited, "", "the message is not edited again");
    let answers = fake.calls("answerCallbackQuery");
    assert!(
        answers.last().unwrap().body["text"]
            .as_str()
            .unwrap()
            .contains("already answered"),
        "{answers:?}"
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");

    // The browser is sent back to the app with access_denied.
    let resp = collect(&app, &browser, &login).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(resp.headers());
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "code"), None);

    // Approve without a number (a button of the old kind, made up) is no answer either.
    let login = open_login_page(&app, &browser, &client).await;
    ask(&app, &fake, &user, &login).await;
    press(&app, &fake, &user, &format!("a:{}", login.id)).await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");
    app.stop().await;
}

#[tokio::test]
async fn this_wasnt_me_ends_the_attempt_and_records_it() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_300_003);
    let asked = ask(&app, &fake, &user, &login).await;
    let edited = press(&app, &fake, &user, &not_me_button(&asked)).await;
    assert!(
        edited.starts_with("Stopped: nobody was signed in to Test App"),
        "{edited}"
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");
    let stored = app.store.get_bot_login(&login.id).await.unwrap().unwrap();
    assert_eq!(stored.answer.as_deref(), Some("not_me"));
    let resp = collect(&app, &browser, &login).await;
    let back = location(resp.headers());
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );

    // Deny is recorded as such.
    let login = open_login_page(&app, &browser, &client).await;
    let asked = ask(&app, &fake, &user, &login).await;
    let edited = press(&app, &fake, &user, &deny_button(&asked)).await;
    assert!(edited.starts_with("Denied"), "{edited}");
    let stored = app.store.get_bot_login(&login.id).await.unwrap().unwrap();
    assert_eq!(stored.answer.as_deref(), Some("deny"));
    app.stop().await;
}

#[tokio::test]
async fn a_device_shows_the_number_and_a_wrong_press_ends_its_code() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let code = started["telegram_match_code"]
        .as_i64()
        .expect("a number for the device to show");
    assert!((10..=99).contains(&code));
    let payload = started["verification_uri_telegram"]
        .as_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    let user = TgUser::new(7_300_004);
    fake.deliver(
        &app,
        &fake.update(message(&user, &format!("/start {payload}"))),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let asked = fake.calls("sendMessage")[0].clone();
    let text = asked.body["text"].as_str().unwrap();
    assert!(
        text.contains("Sign in to Test App on your device"),
        "{text}"
    );
    assert!(text.contains("the number your device shows"), "{text}");
    let wrong = buttons(&asked)
        .into_iter()
        .find(|d| d.starts_with("n:") && !d.ends_with(&format!(":{code}")))
        .unwrap();
    let edited = press(&app, &fake, &user, &wrong).await;
    assert!(
        edited.starts_with("Refused: that is not the number your device showed"),
        "{edited}"
    );
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "access_denied"
    );
    app.stop().await;
}
