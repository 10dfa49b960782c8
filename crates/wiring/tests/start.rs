#![cfg(test)]
//! Starting while a dependency is down: `Services::connect_patiently` waits for an unreachable
//! database (until told to stop), and refuses a setting that cannot work at once.

use std::collections::HashMap;
use std::time::Duration;

use settings::Settings;
use wiring::Services;

fn settings(vars: &[(&str, &str)]) -> Settings {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::load_from(env).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_database_is_waited_for_until_stop() {
    // Nothing listens on port 1: every attempt is refused at once.
    let settings = settings(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let waiting =
        tokio::spawn(async move { Services::connect_patiently(&settings, stopped).await });
    // Still waiting after a minute (of the paused clock) of attempts 0.5 s, 1 s, 2 s ... 10 s
    // apart...
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished(), "gave up on an unreachable database");
    // ...until told to stop: no services, no error.
    stop.send(true).unwrap();
    let outcome = waiting.await.unwrap();
    assert!(matches!(outcome, Ok(None)), "{outcome:?}");
}

#[tokio::test]
async fn a_setting_that_cannot_work_is_an_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let settings = settings(&[
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", "redis://user:secret@[::1"),
    ]);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        Services::connect_patiently(&settings, stopped),
    )
    .await
    .expect("answered at once")
    .unwrap_err();
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(text.starts_with("configuration: REDIS_URL"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
