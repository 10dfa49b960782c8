#![cfg(test)]
//! What the logs of a whole flow hold: the request id of a registration on the server's lines
//! and on the worker's (with the provider's message id), and never an address, a confirmation
//! token or the secret key. The flow runs in process (see `common`), every log line at DEBUG and
//! above captured as JSON, as `LOG_FORMAT=json` writes them.

use std::io;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::Response;
use domain::EmailAddress;
use serde_json::Value;
use store::UserStore;

mod common;

use common::{SECRET_KEY, flash, in_process};

/// A log sink shared between the subscriber and the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn request_id(reply: &Response) -> String {
    reply.headers()["x-request-id"].to_str().unwrap().to_owned()
}

fn token_of(link: &str) -> String {
    link.rsplit_once("/confirm/").unwrap().1.to_owned()
}

/// `value` at a JSON pointer, as a string (numbers too).
fn at(line: &Value, pointer: &str) -> Option<String> {
    line.pointer(pointer).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[tokio::test]
async fn a_whole_flow_logs_request_and_message_ids_and_no_address_token_or_secret() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,sqlx=warn,sea_orm=warn,sea_orm_migration=warn",
        ))
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    let addresses = [
        "Leak.Test+Alpha@Example.com",
        "Second.Person@Example.org",
        "nobody.here@example.net",
    ];

    // Register, deliver, a bad link, a path holding the token, confirm.
    let reply = app.register("Leak.Test%2BAlpha%40Example.com").await;
    assert!(flash(&reply).starts_with("flash=registered;"));
    let registration = request_id(&reply);
    let delivery::Outcome::Sent {
        provider_message_id: Some(provider_id),
    } = app.deliver_next().await
    else {
        panic!("the registration's email was not sent");
    };
    let link = app.mailer.messages()[0].action_url.clone().unwrap();
    let mut tampered = link.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(flash(&app.open(&tampered).await).starts_with("flash=invalid-link;"));
    let garbage = app.open("http://127.0.0.1:5003/confirm/not-a-token").await;
    assert!(flash(&garbage).starts_with("flash=invalid-link;"));
    let elsewhere = app.open(&format!("{link}/more")).await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    assert!(flash(&app.open(&link).await).starts_with("flash=confirmed;"));

    // A second account: registered, then a resend after the cooldown, confirmed with it.
    app.register("Second.Person%40Example.org").await;
    app.deliver_next().await;
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let resent = app.post("/resend", "second.person%40example.org").await;
    assert!(flash(&resent).starts_with("flash=resent;"));
    let resend = request_id(&resent);
    assert!(matches!(
        app.deliver_next().await,
        delivery::Outcome::Sent { .. }
    ));
    let sent = app.mailer.messages();
    assert_eq!(sent.len(), 3);
    assert!(
        flash(&app.open(sent[2].action_url.as_deref().unwrap()).await)
            .starts_with("flash=confirmed;")
    );
    // Resends for a confirmed and for an unknown address, and an invalid address.
    app.post("/resend", "Leak.Test%2BAlpha%40Example.com").await;
    app.post("/resend", "nobody.here%40example.net").await;
    let invalid = app.register("nobody.here%40").await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let first = EmailAddress::parse(addresses[0]).unwrap();
    let user = app.services.store.find_by_email(&first).await.unwrap();
    assert!(user.unwrap().confirmed);

    let text = logs.text();
    let lower = text.to_lowercase();
    assert!(text.lines().count() > 20, "{text}");

    // Nothing secret, in any case.
    for address in addresses {
        let local = address.split('@').next().unwrap().to_lowercase();
        assert!(
            !lower.contains(&local),
            "{address}'s local part is in the logs:\n{text}"
        );
    }
    let tokens: Vec<String> = sent
        .iter()
        .map(|m| token_of(m.action_url.as_deref().unwrap()))
        .collect();
    for token in &tokens {
        assert!(
            !text.contains(token.as_str()),
            "a token is in the logs:\n{text}"
        );
        // Not even its signature (the part a tampered link keeps).
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "a signature is in the logs:\n{text}"
        );
    }
    assert_eq!(
        text.matches("/confirm/").count(),
        text.matches("/confirm/{token}").count(),
        "a raw confirm path is in the logs:\n{text}"
    );
    assert!(
        !text.contains(SECRET_KEY),
        "the secret key is in the logs:\n{text}"
    );

    // Every line is one JSON object; the ids are where they should be.
    for line in text.lines() {
        // A field named `message` would clash with the line's own message.
        assert_eq!(line.matches("\"message\":").count(), 1, "{line}");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |message: &str, request: &str| {
        lines.iter().find(|line| {
            at(line, "/fields/message").as_deref() == Some(message)
                && at(line, "/span/request_id").as_deref() == Some(request)
        })
    };
    let registered = find("user registered", &registration)
        .unwrap_or_else(|| panic!("no registration line for {registration}:\n{text}"));
    assert_eq!(at(registered, "/span/route").as_deref(), Some("/"));
    assert_eq!(at(registered, "/span/method").as_deref(), Some("POST"));
    assert_eq!(
        at(registered, "/fields/to").as_deref(),
        Some("L***@example.com")
    );
    let message_id = at(registered, "/fields/message_id").unwrap();
    let sent_line = find("Job OK: sent", &registration)
        .unwrap_or_else(|| panic!("no send line for {registration}:\n{text}"));
    assert_eq!(at(sent_line, "/span/name").as_deref(), Some("job"));
    assert_eq!(at(sent_line, "/span/message_id"), Some(message_id));
    assert_eq!(
        at(sent_line, "/fields/provider_message_id"),
        Some(provider_id)
    );
    assert!(find("job started", &registration).is_some(), "{text}");
    assert!(find("Job OK: sent", &resend).is_some(), "{text}");
    assert!(
        find("confirmation email owed again", &resend).is_some(),
        "{text}"
    );

    // One line per request, naming the route template and never the path.
    let completed: Vec<&Value> = lines
        .iter()
        .filter(|line| at(line, "/fields/message").as_deref() == Some("request completed"))
        .collect();
    let routes: Vec<String> = completed
        .iter()
        .filter_map(|line| at(line, "/span/route"))
        .collect();
    assert!(routes.iter().any(|r| r == "/confirm/{token}"), "{routes:?}");
    assert!(routes.iter().any(|r| r == "<fallback>"), "{routes:?}");
    let registration_done = completed
        .iter()
        .find(|line| at(line, "/span/request_id").as_deref() == Some(registration.as_str()))
        .unwrap();
    assert_eq!(
        at(registration_done, "/fields/status").as_deref(),
        Some("303")
    );
    assert!(registration_done.pointer("/fields/latency_ms").is_some());
}
