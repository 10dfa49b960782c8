use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load_from(
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

const LONG_KEY: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn defaults_run_locally_with_no_environment() {
    let s = load(&[]).unwrap();
    assert_eq!(s.app_env, AppEnv::Local);
    assert_eq!(s.listen_addr, "127.0.0.1:5003");
    assert_eq!(s.base_url, "http://127.0.0.1:5003");
    assert_eq!(
        s.database_url.expose_secret(),
        "sqlite://var/app.db?mode=rwc"
    );
    assert!(s.redis_url.is_none() && s.embedded_queue());
    assert_eq!(s.token_max_age, 3600);
    assert_eq!(s.mailer, MailerKind::File);
    assert_eq!(s.mail_file_dir, PathBuf::from("var/mail"));
    assert!(s.show_users());
    assert!(s.signing_keys().unwrap().using_development_key);
    assert_eq!(
        s.sender().unwrap().mailbox().email.to_string(),
        "no-reply@example.com"
    );
}

#[test]
fn tutorial_variable_names_work() {
    let s = load(&[
        ("DATABASE_URL", "postgres://u:p@db/users"),
        ("SECRET_KEY", "my_precious"),
        ("SES_REGION", "us-east-2"),
        ("SES_EMAIL_SOURCE", "sender@example.org"),
        ("TOKEN_MAX_AGE", "600"),
        ("SHOW_USERS", "false"),
    ])
    .unwrap();
    assert_eq!(s.database_url.expose_secret(), "postgres://u:p@db/users");
    assert_eq!(s.ses_region.as_deref(), Some("us-east-2"));
    assert_eq!(
        s.sender().unwrap().mailbox().email.to_string(),
        "sender@example.org"
    );
    assert_eq!(s.token_max_age, 600);
    assert!(!s.show_users());
    assert!(!s.signing_keys().unwrap().using_development_key);
    // MAIL_FROM wins over SES_EMAIL_SOURCE.
    let s = load(&[
        ("SES_EMAIL_SOURCE", "a@example.org"),
        ("MAIL_FROM", "Team <b@example.org>"),
    ])
    .unwrap();
    assert_eq!(
        s.sender().unwrap().mailbox().email.to_string(),
        "b@example.org"
    );
}

#[test]
fn production_requires_a_long_secret_key_and_hides_users() {
    let err = load(&[("APP_ENV", "production")]).unwrap_err().to_string();
    assert!(err.contains("SECRET_KEY is required"), "{err}");
    let err = load(&[("APP_ENV", "production"), ("SECRET_KEY", "my_precious")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("too short"), "{err}");
    assert!(
        !err.contains("my_precious"),
        "the key must not be echoed: {err}"
    );
    let s = load(&[("APP_ENV", "production"), ("SECRET_KEY", LONG_KEY)]).unwrap();
    assert!(!s.show_users());
    assert!(!s.signing_keys().unwrap().using_development_key);
    // An explicit SHOW_USERS still wins.
    let s = load(&[
        ("APP_ENV", "production"),
        ("SECRET_KEY", LONG_KEY),
        ("SHOW_USERS", "true"),
    ])
    .unwrap();
    assert!(s.show_users());
}

#[test]
fn fallback_keys_verify_and_the_primary_signs() {
    let email = domain::EmailAddress::parse("test@test.com").unwrap();
    let old = ConfirmationTokens::new(&["my_precious"]).unwrap();
    let link = old.issue(&email, 1_700_000_000);
    let s = load(&[
        ("SECRET_KEY", LONG_KEY),
        ("SECRET_KEY_FALLBACKS", " older , my_precious "),
    ])
    .unwrap();
    let keys = s.signing_keys().unwrap().tokens;
    assert_eq!(
        keys.check(&link, Some(3600), 1_700_000_010)
            .unwrap()
            .payload,
        "test@test.com"
    );
    let new = keys.issue(&email, 1_700_000_000);
    assert_ne!(new, link);
    let only_primary = ConfirmationTokens::new(&[LONG_KEY]).unwrap();
    assert!(only_primary.check(&new, None, 1_700_000_000).is_ok());
}

#[test]
fn bad_values_are_clear_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("APP_ENV", "staging")], "APP_ENV"),
        (&[("APP_ENV", "../../etc/passwd")], "APP_ENV"),
        (&[("TOKEN_MAX_AGE", "soon")], "token_max_age"),
        (&[("TOKEN_MAX_AGE", "0")], "TOKEN_MAX_AGE"),
        (&[("LISTEN_ADDR", "localhost")], "LISTEN_ADDR"),
        (&[("BASE_URL", "127.0.0.1:5003")], "BASE_URL"),
        (&[("MAILER", "carrier-pigeon")], "mailer"),
        (&[("MAIL_FROM", "not an address")], "MAIL_FROM"),
        (&[("WORKER_CONCURRENCY", "0")], "WORKER_CONCURRENCY"),
    ];
    for (vars, needle) in cases {
        let err = load(vars).unwrap_err().to_string();
        assert!(err.contains(needle), "{vars:?}: {err}");
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let s = load(&[("SECRET_KEY", ""), ("REDIS_URL", "  "), ("MAIL_FROM", "")]).unwrap();
    assert!(s.secret_key.is_none());
    assert!(s.embedded_queue());
    assert!(s.signing_keys().unwrap().using_development_key);
}

#[test]
fn adapters_not_in_this_version_say_so() {
    let s = load(&[("MAILER", "smtp")]).unwrap();
    assert!(
        s.build_mailer()
            .unwrap_err()
            .to_string()
            .contains("MAILER=smtp")
    );
    let s = load(&[("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap();
    assert!(
        s.build_queue()
            .unwrap_err()
            .to_string()
            .contains("REDIS_URL")
    );
    assert!(load(&[]).unwrap().build_mailer().is_ok());
}
