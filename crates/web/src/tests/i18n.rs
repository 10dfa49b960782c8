//! The pages in the visitor's language: every message in every locale, the language chosen from
//! `Accept-Language` for pages, messages and errors, and kept on the account at registration.

use super::*;

/// Every message the pages name (`t("…")` in the templates) and the code uses exists in every
/// locale, and no locale has one the default has not: a message added to one `web.ftl` only
/// fails here.
#[test]
fn every_page_message_exists_in_every_locale() {
    let templates = page_templates(None).unwrap();
    let catalog = templates.catalog().unwrap();
    let mut ids = mailer::i18n::ids_in_templates(PAGE_TEMPLATES);
    assert!(ids.contains("register-button") && ids.contains("site-footer"));
    ids.extend(
        crate::i18n::CODE_MESSAGE_IDS
            .iter()
            .map(|id| (*id).to_owned()),
    );
    for flash in [
        Flash::Registered,
        Flash::Confirmed,
        Flash::AlreadyConfirmed,
        Flash::InvalidLink,
        Flash::Resent,
    ] {
        assert!(ids.contains(flash.message_id()), "{flash:?}");
    }
    assert_eq!(
        catalog.locales().collect::<Vec<_>>(),
        domain::Locale::ALL
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
    );
    let missing = catalog.missing(ids.iter().map(String::as_str));
    assert!(missing.is_empty(), "missing (locale, id): {missing:?}");
}

fn in_language(mut request: Request<Body>, language: &str) -> Request<Body> {
    request.headers_mut().insert(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_str(language).unwrap(),
    );
    request
}

#[tokio::test]
async fn pages_follow_accept_language() {
    let zh = send(
        state(no_users(), idle_queue(), false),
        in_language(get("/"), "zh-CN,zh;q=0.9,en;q=0.5"),
    )
    .await;
    assert_eq!(zh.status, StatusCode::OK);
    assert_eq!(zh.headers[header::CONTENT_LANGUAGE], "zh-CN");
    assert!(
        zh.headers[header::VARY]
            .to_str()
            .unwrap()
            .contains("accept-language")
    );
    assert!(zh.body.contains("<html lang=\"zh-CN\">"), "{}", zh.body);
    assert!(zh.body.contains("<h1>注册</h1>"), "{}", zh.body);
    assert!(zh.body.contains("重新发送确认邮件"));
    assert!(!zh.body.contains("Register!"));

    for language in ["en-GB", "fr-FR", "zh-TW", ""] {
        let en = send(
            state(no_users(), idle_queue(), false),
            in_language(get("/"), language),
        )
        .await;
        assert_eq!(en.headers[header::CONTENT_LANGUAGE], "en", "{language}");
        assert!(en.body.contains("<h1>Register</h1>"), "{language}");
    }

    // The 404 page and a form error, in Chinese.
    let missing = send(
        state(no_users(), idle_queue(), false),
        in_language(get("/nope"), "zh"),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("页面不存在"), "{}", missing.body);
    let invalid = send(
        state(no_users(), idle_queue(), false),
        in_language(post_form("email=not-an-address"), "zh-CN"),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid.body.contains("邮箱地址必须且只能包含一个 @。"),
        "{}",
        invalid.body
    );
}

#[tokio::test]
async fn the_flash_is_shown_in_the_reader_s_language() {
    let mut request = in_language(get("/"), "zh-CN");
    request
        .headers_mut()
        .insert(header::COOKIE, HeaderValue::from_static("flash=confirmed"));
    let reply = send(state(no_users(), idle_queue(), false), request).await;
    assert!(
        reply.body.contains("您已确认您的账户。谢谢！"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_registration_keeps_the_browser_s_language() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .withf(|_, locale, _| *locale == domain::Locale::ZhCn)
        .times(1)
        .returning(|email, _, _| {
            Ok(Registration::CreatedWithoutEmail {
                user: user(5, email.as_str(), false),
            })
        });
    let reply = send(
        state(users, idle_queue(), false),
        in_language(post_form("email=zh%40example.com"), "zh-Hans-CN, en;q=0.1"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}
