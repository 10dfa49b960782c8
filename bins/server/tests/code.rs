#![cfg(test)]
//! The six-digit code beside the link, on the embedded default (real SQLite, the real worker
//! code, a captured mailer, a manual clock): it confirms on a client that never saw the
//! registration, five wrong tries kill it, it lives as long as the link, and the link and the
//! code are independent.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use domain::EmailAddress;
use http_body_util::BodyExt;
use store::UserStore;
use tower::ServiceExt;

mod common;

use common::{InProcess, csrf_from, flash, in_process, set_cookies};

/// The code in the newest email to `to`.
fn code_in(app: &InProcess, to: &str) -> String {
    let sent = app.mailer.messages();
    let email = sent
        .iter()
        .rev()
        .find(|m| m.to.as_str().eq_ignore_ascii_case(to))
        .expect("an email to the address");
    let marker = "/code instead:\n";
    let start = email.text.find(marker).expect("the email shows a code") + marker.len();
    let code = email.text[start..]
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(code.len(), 6, "{code:?}");
    assert!(
        email
            .html
            .as_deref()
            .unwrap()
            .contains(&format!(">{code}</p>"))
    );
    code
}

async fn body_of(reply: Response) -> String {
    let bytes = reply.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `GET path` with `cookie`, if any.
async fn get(app: &InProcess, path: &str, cookie: Option<&str>) -> Response {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Body::empty()).unwrap();
    app.app.clone().oneshot(request).await.unwrap()
}

/// Loads `/code` with `cookie` (besides the CSRF one it gets) and posts `fields` with its token,
/// as a browser does.
async fn post_code(app: &InProcess, cookie: Option<&str>, fields: &str) -> Response {
    let page = get(app, "/code", cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let cookies = set_cookies(page.headers());
    let (csrf_cookie, token) = csrf_from(&cookies, &body_of(page).await);
    let cookie = match cookie {
        Some(extra) => format!("{csrf_cookie}; {extra}"),
        None => csrf_cookie,
    };
    let request = Request::post("/code")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(format!("{fields}&csrf_token={token}")))
        .unwrap();
    app.app.clone().oneshot(request).await.unwrap()
}

async fn confirmed(app: &InProcess, address: &str) -> bool {
    let email = EmailAddress::parse(address).unwrap();
    let user = app.services.store.find_by_email(&email).await.unwrap();
    user.unwrap().confirmed
}

async fn registered_and_sent(app: &InProcess, address: &str) -> String {
    let reply = app.register(&address.replace('@', "%40")).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(matches!(
        app.deliver_next().await,
        delivery::Outcome::Sent { .. }
    ));
    code_in(app, address)
}

#[tokio::test]
async fn the_code_confirms_on_another_client_and_five_wrong_tries_kill_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;

    // Another client: no cookie from the registration, so the address is typed with the code.
    let code = registered_and_sent(&app, "phone@example.com").await;
    let page = body_of(get(&app, "/code", None).await).await;
    assert!(page.contains("name=\"email\"") && page.contains("name=\"code\""));
    let spaced = format!("{}+{}", &code[..3], &code[3..]);
    let reply = post_code(
        &app,
        None,
        &format!("email=phone%40example.com&code={spaced}"),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(
        flash(&reply).starts_with("flash=confirmed;"),
        "{}",
        flash(&reply)
    );
    assert!(confirmed(&app, "phone@example.com").await);
    // Again: already confirmed (the code is not a one-shot secret that now misleads).
    let reply = post_code(
        &app,
        None,
        &format!("email=phone%40example.com&code={code}"),
    )
    .await;
    assert!(flash(&reply).starts_with("flash=already-confirmed;"));

    // Five wrong tries kill the code: the right one is refused after them.
    let code = registered_and_sent(&app, "guessed@example.com").await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for i in 0..5 {
        let reply = post_code(
            &app,
            None,
            &format!("email=guessed%40example.com&code={wrong}"),
        )
        .await;
        assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY, "try {i}");
        let page = body_of(reply).await;
        assert!(page.contains("That code does not work."), "try {i}");
        assert!(page.contains("aria-invalid=\"true\" aria-describedby=\"code-error\""));
    }
    let reply = post_code(
        &app,
        None,
        &format!("email=guessed%40example.com&code={code}"),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!confirmed(&app, "guessed@example.com").await);

    // An address without an account gets the same answer as a wrong code.
    let reply = post_code(
        &app,
        None,
        &format!("email=nobody%40example.com&code={code}"),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(reply).await.contains("That code does not work."));

    // Malformed input: clear errors, nothing stored or counted.
    let reply = post_code(&app, None, "email=nope&code=12").await;
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = body_of(reply).await;
    assert!(
        page.contains("id=\"code-email-error\"") && page.contains("The code is the six digits")
    );
}

#[tokio::test]
async fn the_registration_cookie_names_the_address_so_only_the_code_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    let reply = app.register("same%40example.com").await;
    let pending = set_cookies(reply.headers())
        .lines()
        .find(|c| c.starts_with("pending="))
        .expect("the registration sets the pending cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(set_cookies(reply.headers()).contains("HttpOnly; SameSite=Lax; Max-Age=3600"));
    // The thank-you page offers the code.
    let home = get(&app, "/", Some("flash=registered")).await;
    assert!(
        body_of(home)
            .await
            .contains("href=\"/code\">Enter the code from the email</a>")
    );
    assert!(matches!(
        app.deliver_next().await,
        delivery::Outcome::Sent { .. }
    ));
    let code = code_in(&app, "same@example.com");
    let page = body_of(get(&app, "/code", Some(&pending)).await).await;
    assert!(
        page.contains("s***@example.com") && !page.contains("name=\"email\""),
        "{page}"
    );
    // A forged cookie names nothing: the address is asked for.
    let forged = post_code(
        &app,
        Some("pending=InNhbWVAZXhhbXBsZS5jb20i.x.y"),
        &format!("code={code}"),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body_of(forged)
            .await
            .contains("Enter the address you registered.")
    );
    let reply = post_code(&app, Some(&pending), &format!("code={code}")).await;
    assert!(
        flash(&reply).starts_with("flash=confirmed;"),
        "{}",
        flash(&reply)
    );
}

#[tokio::test]
async fn the_link_and_the_code_are_independent_and_live_as_long_as_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    let code = registered_and_sent(&app, "scanned@example.com").await;
    let link = app
        .mailer
        .messages()
        .last()
        .unwrap()
        .action_url
        .clone()
        .unwrap();
    // A scanner opens the link (GET and HEAD): the code still confirms.
    assert_eq!(app.fetch("HEAD", &link).await.status(), StatusCode::OK);
    assert_eq!(app.view(&link).await.status(), StatusCode::OK);
    let reply = post_code(
        &app,
        None,
        &format!("email=scanned%40example.com&code={code}"),
    )
    .await;
    assert!(flash(&reply).starts_with("flash=confirmed;"));
    // And the link still answers (already confirmed), not "invalid".
    assert!(flash(&app.open(&link).await).starts_with("flash=already-confirmed;"));

    // A code expires with its link (TOKEN_MAX_AGE, 3600 s here).
    let code = registered_and_sent(&app, "late@example.com").await;
    app.clock.advance(chrono::TimeDelta::seconds(3601));
    let reply = post_code(&app, None, &format!("email=late%40example.com&code={code}")).await;
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!confirmed(&app, "late@example.com").await);
}
