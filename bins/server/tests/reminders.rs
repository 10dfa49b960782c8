#![cfg(test)]
//! REMINDER_AFTER on the embedded default, with a manual clock: an account still unconfirmed a
//! day after registering gets one reminder (a fresh link and code that work), once, however
//! often the sweeper passes; confirmed and young accounts get none.

use chrono::TimeDelta;
use delivery::{Reminded, Reminders, remind_once};
use domain::{Clock as _, ResendPolicy};
use queue::JobQueue as _;

mod common;

use common::{InProcess, flash, in_process};

/// One reminder pass of the sweeper as `worker run` configures it from the settings
/// (REMINDER_AFTER's default), at the clock's now.
async fn pass(app: &InProcess) -> Reminded {
    let dir = tempfile::tempdir().unwrap();
    let settings = common::settings_for(dir.path(), &[]);
    let engine = wiring::delivery_engine(&settings, &app.services, app.mailer.clone()).unwrap();
    let reminders = engine.sweep.reminders.expect("reminders are on by default");
    assert_eq!(
        reminders,
        Reminders {
            after: TimeDelta::hours(24),
            policy: ResendPolicy::default(),
        }
    );
    let users = app.services.store.as_ref();
    remind_once(users, app.queue.as_ref(), app.clock.now(), reminders, 200)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_reminder_with_a_working_link_to_accounts_unconfirmed_after_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    for address in ["late%40example.com", "done%40example.com"] {
        app.register(address).await;
        assert!(matches!(
            app.deliver_next().await,
            delivery::Outcome::Sent { .. }
        ));
    }
    let done_link = app.mailer.messages()[1].action_url.clone().unwrap();
    assert!(flash(&app.open(&done_link).await).starts_with("flash=confirmed;"));

    // Before a day has passed: nothing is due.
    app.clock.advance(TimeDelta::hours(23));
    assert_eq!(pass(&app).await, Reminded::default());
    app.register("young%40example.com").await;
    app.deliver_next().await;

    // A day later: the unconfirmed account (only) gets its reminder.
    app.clock.advance(TimeDelta::hours(2));
    assert_eq!(
        pass(&app).await,
        Reminded {
            claimed: 1,
            owed: 1
        }
    );
    assert!(matches!(
        app.deliver_next().await,
        delivery::Outcome::Sent { .. }
    ));
    let sent = app.mailer.messages();
    assert_eq!(sent.len(), 4);
    let reminder = &sent[3];
    assert_eq!(reminder.to.as_str(), "late@example.com");
    assert_ne!(reminder.action_url, sent[0].action_url, "a fresh link");
    // The first link has expired (TOKEN_MAX_AGE 1 h); the reminder's works.
    let first = sent[0].action_url.clone().unwrap();
    assert!(flash(&app.open(&first).await).starts_with("flash=invalid-link;"));
    let link = reminder.action_url.clone().unwrap();
    assert!(flash(&app.open(&link).await).starts_with("flash=confirmed;"));
    // Passing again sends nothing more.
    assert_eq!(pass(&app).await, Reminded::default());
    // A day on, the young account is due, once; never again after that.
    app.clock.advance(TimeDelta::hours(30));
    assert_eq!(
        pass(&app).await,
        Reminded {
            claimed: 1,
            owed: 1
        }
    );
    app.clock.advance(TimeDelta::hours(30));
    assert_eq!(pass(&app).await, Reminded::default());
    assert_eq!(
        app.queue.depth().await.unwrap(),
        1,
        "the young account's reminder"
    );
}

/// `POST /` with `address` from a browser holding `cookie` (the pending cookie of an earlier
/// registration), with the page's CSRF token; the answer's `Set-Cookie` lines.
async fn register_from(app: &InProcess, address: &str, cookie: &str) -> String {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let home = Request::get("/")
        .header(header::COOKIE, format!("{cookie}; flash=registered"))
        .body(Body::empty())
        .unwrap();
    let home = app.app.clone().oneshot(home).await.unwrap();
    let cookies = common::set_cookies(home.headers());
    let page = home.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8_lossy(&page).into_owned();
    let (csrf, token) = common::csrf_from(&cookies, &page);
    if !cookie.is_empty() {
        // Right after the registration, the form holds the address, to correct it.
        assert!(page.contains("id=\"correct-hint\""), "{page}");
    }
    let post = Request::post("/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("{csrf}; {cookie}"))
        .body(Body::from(format!(
            "email={}&csrf_token={token}",
            address.replace('@', "%40")
        )))
        .unwrap();
    let reply = app.app.clone().oneshot(post).await.unwrap();
    app.background.wait().await;
    common::set_cookies(reply.headers())
}

#[tokio::test]
async fn a_corrected_address_is_registered_and_the_mistyped_one_gets_no_reminder() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    let cookies = register_from(&app, "visitor@exmaple.com", "").await;
    let pending = cookies
        .lines()
        .find(|c| c.starts_with("pending="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    app.deliver_next().await;
    // The thank-you page shows the mistyped address in the form; the visitor fixes it.
    let home = register_from(&app, "visitor@example.com", &pending).await;
    assert!(home.contains("flash=registered"));
    app.deliver_next().await;
    assert_eq!(app.mailer.messages().len(), 2);

    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(
        pass(&app).await,
        Reminded {
            claimed: 1,
            owed: 1
        }
    );
    app.deliver_next().await;
    let sent = app.mailer.messages();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[2].to.as_str(),
        "visitor@example.com",
        "only the corrected address"
    );
}
