use chrono::TimeDelta;
use domain::{ResendPolicy, RetryPolicy};

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
    assert_eq!(s.listen_addr, "127.0.0.1:5003".parse().unwrap());
    assert_eq!(s.base_url.as_str(), "http://127.0.0.1:5003/");
    assert_eq!(
        s.database_url.expose_secret(),
        "sqlite://var/app.db?mode=rwc"
    );
    assert!(s.redis_url.is_none() && s.embedded_queue());
    assert_eq!(s.token_max_age, Duration::from_secs(3600));
    assert_eq!(s.mail.kind, MailerKind::File);
    assert_eq!(s.mail.file_dir, PathBuf::from("var/mail"));
    assert!(s.web.show_users);
    assert!(s.using_development_key);
    assert_eq!(s.mail.from.email(), "no-reply@example.com");
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(
        load(&[("LOG_FORMAT", "json")]).unwrap().log_format,
        LogFormat::Json
    );
    assert!(!s.https());
    assert!(
        load(&[("BASE_URL", "https://example.com/accounts")])
            .unwrap()
            .https()
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
    assert_eq!(s.mail.ses_region.as_deref(), Some("us-east-2"));
    assert_eq!(s.mail.from.email(), "sender@example.org");
    assert_eq!(s.token_max_age, Duration::from_secs(600));
    assert!(!s.web.show_users);
    assert!(!s.using_development_key);
    // MAIL_FROM wins over SES_EMAIL_SOURCE.
    let s = load(&[
        ("SES_EMAIL_SOURCE", "a@example.org"),
        ("MAIL_FROM", "Team <b@example.org>"),
    ])
    .unwrap();
    assert_eq!(s.mail.from.email(), "b@example.org");
    assert_eq!(s.mail.from.return_path(), None);
}

#[test]
fn mail_return_path_is_the_envelope_sender() {
    let s = load(&[("MAIL_RETURN_PATH", "bounces@mail.example.org")]).unwrap();
    assert_eq!(
        s.mail.from.return_path().as_deref(),
        Some("bounces@mail.example.org")
    );
    let error = load(&[("MAIL_RETURN_PATH", "Bounces <b@example.org>")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("MAIL_RETURN_PATH"), "{error}");
}

#[test]
fn ses_feedback_queue_url_is_an_http_url() {
    assert_eq!(load(&[]).unwrap().mail.ses_feedback_queue_url, None);
    assert_eq!(
        load(&[("SES_FEEDBACK_QUEUE_URL", " ")])
            .unwrap()
            .mail
            .ses_feedback_queue_url,
        None
    );
    let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ses-feedback";
    let s = load(&[("SES_FEEDBACK_QUEUE_URL", url)]).unwrap();
    assert_eq!(s.mail.ses_feedback_queue_url.as_deref(), Some(url));
    for bad in [
        "ses-feedback",
        "ftp://example.org/q",
        "arn:aws:sqs:eu-west-1:1:q",
    ] {
        let error = load(&[("SES_FEEDBACK_QUEUE_URL", bad)])
            .unwrap_err()
            .to_string();
        assert!(error.contains("SES_FEEDBACK_QUEUE_URL"), "{bad}: {error}");
    }
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
    assert!(!s.web.show_users);
    assert!(!s.using_development_key);
    // An explicit SHOW_USERS still wins.
    let s = load(&[
        ("APP_ENV", "production"),
        ("SECRET_KEY", LONG_KEY),
        ("SHOW_USERS", "true"),
    ])
    .unwrap();
    assert!(s.web.show_users);
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
    let keys = s.tokens;
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
        (&[("SMTP_MAX_CONNECTIONS", "0")], "SMTP_MAX_CONNECTIONS"),
        (&[("SMTP_MAX_CONNECTIONS", "257")], "SMTP_MAX_CONNECTIONS"),
        (&[("RETRY_BASE_DELAY", "fast")], "RETRY_BASE_DELAY"),
        (&[("RETRY_BASE_DELAY", "3h")], "RETRY_MAX_DELAY"),
        (&[("RETRY_MAX_ATTEMPTS", "0")], "RETRY_MAX_ATTEMPTS"),
        (&[("RETRY_MAX_ATTEMPTS", "many")], "retry_max_attempts"),
        (&[("MAIL_MAX_RATE", "-1")], "MAIL_MAX_RATE"),
        (&[("MAIL_MAX_RATE", "lots")], "mail_max_rate"),
        (&[("SMTP_TIMEOUT", "x")], "SMTP_TIMEOUT"),
        (&[("ACCOUNT_PAUSE", "x")], "ACCOUNT_PAUSE"),
        (&[("SWEEP_INTERVAL", "10ms")], "SWEEP_INTERVAL"),
        (&[("SEND_LEASE", "0s")], "SEND_LEASE"),
        (&[("RESEND_COOLDOWN", "soon")], "RESEND_COOLDOWN"),
        (&[("RESEND_DAILY_CAP", "0")], "RESEND_DAILY_CAP"),
        (&[("RATE_LIMIT_PER_IP", "-1")], "rate_limit_per_ip"),
        (
            &[("TRUSTED_PROXY_HEADER", "X-Forwarded-For: 1.2.3.4")],
            "TRUSTED_PROXY_HEADER",
        ),
        (&[("REQUEST_TIMEOUT", "10ms")], "REQUEST_TIMEOUT"),
        (&[("HEADER_READ_TIMEOUT", "10ms")], "HEADER_READ_TIMEOUT"),
        (&[("HEADER_READ_TIMEOUT", "x")], "HEADER_READ_TIMEOUT"),
        (&[("MAX_CONNECTIONS", "2")], "MAX_CONNECTIONS"),
        (&[("OPS_ADDR", "metrics")], "OPS_ADDR"),
        (&[("CONFIRM_ON_GET", "maybe")], "confirm_on_get"),
        (
            &[("LINK_RATE_LIMIT_PER_IP", "-1")],
            "link_rate_limit_per_ip",
        ),
        (
            &[("LOG_FORMAT", "xml")],
            "LOG_FORMAT must be `text` or `json`",
        ),
    ];
    for (vars, needle) in cases {
        let err = load(vars).unwrap_err().to_string();
        assert!(err.contains(needle), "{vars:?}: {err}");
    }
}

#[test]
fn delivery_tuning_has_documented_defaults_and_reads_overrides() {
    use std::time::Duration;
    let s = load(&[]).unwrap();
    assert_eq!(s.delivery.retry, RetryPolicy::default());
    assert_eq!(
        (
            s.delivery.retry.base,
            s.delivery.retry.max,
            s.delivery.retry.max_attempts
        ),
        (Duration::from_secs(30), Duration::from_secs(7200), 10)
    );
    assert_eq!(s.mail.max_rate, None);
    assert_eq!(s.mail.smtp_timeout, Duration::from_secs(30));
    assert_eq!(s.delivery.account_pause, TimeDelta::seconds(300));
    assert_eq!(s.delivery.sweep_interval, Duration::from_secs(15));
    assert_eq!(s.delivery.send_lease, TimeDelta::seconds(120));
    assert_eq!(s.delivery.concurrency, 64);
    assert_eq!(s.delivery.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.web.resend, ResendPolicy::default());
    assert_eq!(
        (s.web.resend.cooldown, s.web.resend.daily_cap),
        (TimeDelta::seconds(60), 5)
    );
    assert_eq!(s.web.rate_limit_per_ip, 20);
    assert_eq!(s.web.trusted_proxy_header, None);
    assert_eq!(s.web.request_timeout, Duration::from_secs(10));
    assert_eq!(s.web.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.web.max_connections, 1024);
    assert!(!s.web.confirm_on_get);
    assert_eq!(s.web.link_rate_limit_per_ip, 30);
    assert_eq!(s.ops_addr, None);
    assert!(s.web.admin_token.is_none());
    assert_eq!(s.mail.smtp_max_connections, 4);

    let s = load(&[
        ("RETRY_BASE_DELAY", "500ms"),
        ("RETRY_MAX_DELAY", "4s"),
        ("RETRY_MAX_ATTEMPTS", "3"),
        ("MAIL_MAX_RATE", "2.5"),
        ("SWEEP_INTERVAL", "250ms"),
        ("RESEND_COOLDOWN", "5m"),
        ("RESEND_DAILY_CAP", "2"),
        ("RATE_LIMIT_PER_IP", "0"),
        ("TRUSTED_PROXY_HEADER", "X-Real-IP"),
        ("ADMIN_TOKEN", "0123456789abcdef-admin"),
    ])
    .unwrap();
    assert_eq!(
        (s.web.resend.cooldown, s.web.resend.daily_cap),
        (TimeDelta::seconds(300), 2)
    );
    assert_eq!(s.web.rate_limit_per_ip, 0);
    assert_eq!(
        s.web.trusted_proxy_header.as_ref().map(|h| h.as_str()),
        Some("x-real-ip")
    );
    assert_eq!(
        s.delivery.retry,
        RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(4),
            max_attempts: 3
        }
    );
    assert_eq!(s.mail.max_rate, Some(2.5));
    assert_eq!(s.delivery.sweep_interval, Duration::from_millis(250));
    assert!(
        s.web
            .admin_token
            .as_ref()
            .is_some_and(|t| t.matches(b"0123456789abcdef-admin"))
    );
}

#[test]
fn empty_variables_count_as_unset() {
    let s = load(&[("SECRET_KEY", ""), ("REDIS_URL", "  "), ("MAIL_FROM", "")]).unwrap();
    assert!(s.embedded_queue());
    assert!(s.using_development_key);
    assert_eq!(s.secret_key_strs(), [DEVELOPMENT_SECRET_KEY]);
}

#[test]
fn the_smtp_url_is_parsed_at_load_and_its_password_never_shown() {
    let err = load(&[("MAILER", "smtp")]).unwrap_err().to_string();
    assert!(err.contains("SMTP_URL"), "{err}");
    for url in [
        "http://user:hunter2@mail.example.com",
        "smtp://user:hunter2@mail.example.com?tls=none",
    ] {
        let err = load(&[("MAILER", "smtp"), ("SMTP_URL", url)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SMTP_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }
    let s = load(&[
        ("MAILER", "smtp"),
        ("SMTP_URL", "smtps://user:hunter2@mail.example.com"),
    ])
    .unwrap();
    let url = s.mail.smtp_url.as_ref().unwrap();
    assert_eq!((url.host(), url.port()), ("mail.example.com", 465));
    assert!(url.is_authenticated());
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains(DEVELOPMENT_SECRET_KEY), "{debug}");
}

#[test]
fn the_redis_url_is_kept_secret() {
    let s = load(&[("REDIS_URL", "redis://user:hunter2@127.0.0.1:1")]).unwrap();
    assert!(!s.embedded_queue());
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn a_redis_ca_file_needs_a_rediss_url() {
    for vars in [
        &[("REDIS_TLS_CA_FILE", "/etc/ca.pem")][..],
        &[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_TLS_CA_FILE", "/etc/ca.pem"),
        ],
    ] {
        let error = load(vars).unwrap_err().to_string();
        assert!(error.contains("REDIS_TLS_CA_FILE"), "{error}");
    }
    let s = load(&[
        ("REDIS_URL", "rediss://127.0.0.1:6380"),
        ("REDIS_TLS_CA_FILE", "/etc/ca.pem"),
    ])
    .unwrap();
    assert_eq!(
        s.redis_tls_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
}

#[test]
fn an_smtp_ca_file_needs_an_smtp_url_with_tls() {
    for vars in [
        &[("SMTP_TLS_CA_FILE", "/etc/ca.pem")][..],
        &[
            ("MAILER", "smtp"),
            ("SMTP_URL", "smtp://127.0.0.1:2525?tls=none"),
            ("SMTP_TLS_CA_FILE", "/etc/ca.pem"),
        ],
    ] {
        let error = load(vars).unwrap_err().to_string();
        assert!(error.contains("SMTP_TLS_CA_FILE"), "{error}");
    }
    let s = load(&[
        ("MAILER", "smtp"),
        ("SMTP_URL", "smtps://user:pw@relay.internal"),
        ("SMTP_TLS_CA_FILE", "/etc/ca.pem"),
    ])
    .unwrap();
    assert_eq!(
        s.mail.smtp_tls_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
}

#[test]
fn durations_parse_with_units() {
    use std::time::Duration;
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration(" 15m "), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    for bad in [
        "",
        "s",
        "-1s",
        "10 parsecs",
        "99999999999999999999d",
        "99999999999999999999",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert!(
        parse_duration("soon")
            .unwrap_err()
            .contains("is not a duration like 500ms, 30s, 15m, 2h or 1d")
    );
    assert!(
        parse_duration("10 parsecs")
            .unwrap_err()
            .contains("unknown unit")
    );
    let err = load(&[("WORKER_SHUTDOWN_TIMEOUT", "soon")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("WORKER_SHUTDOWN_TIMEOUT"), "{err}");
}

#[test]
fn worker_metrics_addr_is_off_by_default_and_must_be_an_address() {
    assert_eq!(load(&[]).unwrap().worker_metrics_addr, None);
    let s = load(&[("WORKER_METRICS_ADDR", "0.0.0.0:9102")]).unwrap();
    assert_eq!(s.worker_metrics_addr, Some("0.0.0.0:9102".parse().unwrap()));
    let err = load(&[("WORKER_METRICS_ADDR", "localhost:9102")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("WORKER_METRICS_ADDR"), "{err}");
}

#[test]
fn base_url_keeps_a_path_and_refuses_what_is_not_a_page_url() {
    let s = load(&[("BASE_URL", "http://127.0.0.1:5111/accounts")]).unwrap();
    assert_eq!(s.base_url.as_str(), "http://127.0.0.1:5111/accounts");
    for bad in [
        "127.0.0.1:5003",
        "ftp://example.com",
        "http://example.com/?q=1",
        "http://example.com/#f",
        "http://exa mple.com",
        "https://",
    ] {
        let err = load(&[("BASE_URL", bad)]).unwrap_err().to_string();
        assert!(err.contains("BASE_URL"), "{bad}: {err}");
    }
}

/// What is only safe on a developer's machine is refused once the server listens beyond
/// loopback, and production asks for long keys and tokens everywhere.
#[test]
fn unsafe_settings_are_refused_off_loopback_and_in_production() {
    let public = ("LISTEN_ADDR", "0.0.0.0:5003");
    let err = load(&[public, ("SHOW_USERS", "false")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SECRET_KEY is required when LISTEN_ADDR"),
        "{err}"
    );
    let err = load(&[public, ("SECRET_KEY", "local-key")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHOW_USERS"), "{err}");
    let s = load(&[public, ("SECRET_KEY", "local-key"), ("SHOW_USERS", "false")]).unwrap();
    assert!(!s.web.show_users);
    // On loopback the development defaults still run.
    assert!(
        load(&[("LISTEN_ADDR", "127.0.0.1:8000")])
            .unwrap()
            .using_development_key
    );

    let production = [
        ("APP_ENV", "production"),
        ("SECRET_KEY", LONG_KEY),
        ("LISTEN_ADDR", "0.0.0.0:5003"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut vars = production.to_vec();
        vars.push(extra);
        load(&vars)
    };
    let err = with(("ADMIN_TOKEN", "0123456789abcdef-admin"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ADMIN_TOKEN is too short for production"),
        "{err}"
    );
    assert!(!err.contains("0123456789abcdef-admin"), "{err}");
    assert!(
        with(("ADMIN_TOKEN", LONG_KEY))
            .unwrap()
            .web
            .admin_token
            .is_some()
    );
    let err = with(("SECRET_KEY_FALLBACKS", "flask-key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SECRET_KEY_FALLBACKS"), "{err}");
    assert!(!err.contains("flask-key"), "{err}");
    assert_eq!(
        with(("SECRET_KEY_FALLBACKS", LONG_KEY))
            .unwrap()
            .secret_keys
            .len(),
        2
    );
    // In local, a short Flask key may stay a fallback and a 16-character token is enough.
    assert!(
        load(&[
            ("SECRET_KEY_FALLBACKS", "flask-key"),
            ("ADMIN_TOKEN", "0123456789abcdef")
        ])
        .is_ok()
    );
    let s = load(&[("OPS_ADDR", "127.0.0.1:9101"), ("CONFIRM_ON_GET", "true")]).unwrap();
    assert_eq!(s.ops_addr, Some("127.0.0.1:9101".parse().unwrap()));
    assert!(s.web.confirm_on_get);
}

#[test]
fn dkim_needs_a_selector_and_a_key_and_signs_for_the_from_domain() {
    const KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mailer/src/dkim/tests/ed25519.pem"
    );
    assert!(load(&[]).unwrap().mail.from.dkim().is_none());
    for vars in [
        &[("DKIM_SELECTOR", "s1")][..],
        &[("DKIM_PRIVATE_KEY_FILE", KEY)],
        &[("DKIM_DOMAIN", "example.com")],
    ] {
        let error = load(vars).unwrap_err().to_string();
        assert!(error.contains("DKIM_"), "{error}");
    }
    let s = load(&[
        ("MAIL_FROM", "Confirm <no-reply@mail.example.org>"),
        ("DKIM_SELECTOR", "s1"),
        ("DKIM_PRIVATE_KEY_FILE", KEY),
    ])
    .unwrap();
    let dkim = s.mail.from.dkim().unwrap();
    assert_eq!(
        (dkim.domain(), dkim.selector(), dkim.algorithm()),
        ("mail.example.org", "s1", "ed25519-sha256")
    );
    let s = load(&[
        ("MAIL_FROM", "no-reply@mail.example.org"),
        ("DKIM_DOMAIN", "example.org"),
        ("DKIM_SELECTOR", "s1"),
        ("DKIM_PRIVATE_KEY_FILE", KEY),
    ])
    .unwrap();
    assert_eq!(s.mail.from.dkim().unwrap().domain(), "example.org");

    let error = load(&[
        ("MAIL_FROM", "no-reply@example.org"),
        ("DKIM_DOMAIN", "example.com"),
        ("DKIM_SELECTOR", "s1"),
        ("DKIM_PRIVATE_KEY_FILE", KEY),
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("does not cover the From domain"), "{error}");
    let error = load(&[
        ("DKIM_SELECTOR", "s1"),
        ("DKIM_PRIVATE_KEY_FILE", "/nonexistent/dkim.pem"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("DKIM_PRIVATE_KEY_FILE /nonexistent/dkim.pem"),
        "{error}"
    );
}

#[test]
fn api_keys_are_a_comma_separated_list_of_long_keys() {
    assert!(load(&[]).unwrap().web.api_keys.is_none());
    let a = "0123456789abcdef0123456789abcdef-a";
    let b = "0123456789abcdef0123456789abcdef-b";
    let s = load(&[("API_KEYS", &format!("{a}, {b}"))]).unwrap();
    let keys = s.web.api_keys.unwrap();
    assert!(keys.matches(a.as_bytes()) && keys.matches(b.as_bytes()));
    for bad in ["short-key", &format!("{a},,{b}")] {
        let error = load(&[("API_KEYS", bad)]).unwrap_err().to_string();
        assert!(error.contains("API_KEYS"), "{error}");
        assert!(!error.contains(a), "the keys are not echoed: {error}");
    }
}

#[test]
fn confirmed_redirect_url_is_absolute_http_and_gets_the_marker() {
    assert!(load(&[]).unwrap().web.confirmed_redirect.is_none());
    let s = load(&[(
        "CONFIRMED_REDIRECT_URL",
        "https://app.example.com/welcome?from=mail",
    )])
    .unwrap();
    assert_eq!(
        s.web.confirmed_redirect.as_deref(),
        Some("https://app.example.com/welcome?from=mail&email_confirmed=1")
    );
    for bad in [
        "/welcome",
        "javascript:alert(1)",
        "https://app.example.com/#x",
        "https://user:pw@app.example.com/",
        "ftp://app.example.com/",
    ] {
        let error = load(&[("CONFIRMED_REDIRECT_URL", bad)])
            .unwrap_err()
            .to_string();
        assert!(error.contains("CONFIRMED_REDIRECT_URL"), "{bad}: {error}");
    }
}

#[test]
fn allowed_redirect_origins_are_origins_only() {
    assert!(load(&[]).unwrap().web.allowed_redirect_origins.is_empty());
    let s = load(&[(
        "ALLOWED_REDIRECT_ORIGINS",
        "https://App.Example.com, http://127.0.0.1:8080/",
    )])
    .unwrap();
    assert_eq!(
        s.web.allowed_redirect_origins,
        ["https://app.example.com", "http://127.0.0.1:8080"]
    );
    for bad in [
        "app.example.com",
        "https://app.example.com/path",
        "https://app.example.com/?q=1",
        "https://u:p@app.example.com",
        "ftp://app.example.com",
    ] {
        let error = load(&[("ALLOWED_REDIRECT_ORIGINS", bad)])
            .unwrap_err()
            .to_string();
        assert!(error.contains("ALLOWED_REDIRECT_ORIGINS"), "{bad}: {error}");
    }
}

#[test]
fn webhooks_need_urls_and_secrets_and_never_show_them() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(load(&[]).unwrap().webhooks.is_none());
    let settings = load(&[
        (
            "WEBHOOK_URL",
            " https://app.example/hooks?token=abc , http://127.0.0.1:9000/h ",
        ),
        (
            "WEBHOOK_SECRET",
            &format!("{SECRET}, whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        ("WEBHOOK_TIMEOUT", "2s"),
    ])
    .unwrap();
    let hooks = settings.webhooks.unwrap();
    assert_eq!(
        hooks.endpoints,
        [
            "https://app.example/hooks?token=abc",
            "http://127.0.0.1:9000/h"
        ]
    );
    assert_eq!(hooks.timeout, Duration::from_secs(2));
    assert_eq!(
        hooks.signer.signature("msg_1", 1, b"{}").split(' ').count(),
        2,
        "signs with both secrets"
    );
    assert!(!format!("{hooks:?}").contains("MfKQ9r8"));
    assert!(
        load(&[("WEBHOOK_SECRET", SECRET)])
            .unwrap_err()
            .to_string()
            .contains("WEBHOOK_URL is not")
    );

    let refused = [
        (
            vec![("WEBHOOK_URL", "https://a.example/h")],
            "WEBHOOK_SECRET is not",
        ),
        (
            vec![
                ("WEBHOOK_URL", "ftp://a.example/h"),
                ("WEBHOOK_SECRET", SECRET),
            ],
            "URL 1",
        ),
        (
            vec![
                ("WEBHOOK_URL", "https://a.example/h,https://u:p@b.example/"),
                ("WEBHOOK_SECRET", SECRET),
            ],
            "URL 2: a user or password",
        ),
        (
            vec![
                ("WEBHOOK_URL", "https://a.example/h#x"),
                ("WEBHOOK_SECRET", SECRET),
            ],
            "fragment",
        ),
        (
            vec![
                ("WEBHOOK_URL", "https://a.example/h"),
                ("WEBHOOK_SECRET", "hunter2hunter2hunter2"),
            ],
            "secret 1: a webhook secret must start with `whsec_`",
        ),
        (
            vec![
                ("WEBHOOK_URL", "https://a.example/h"),
                ("WEBHOOK_SECRET", SECRET),
                ("WEBHOOK_TIMEOUT", "10m"),
            ],
            "WEBHOOK_TIMEOUT",
        ),
    ];
    for (vars, expected) in refused {
        let error = load(&vars).unwrap_err().to_string();
        assert!(error.contains(expected), "{vars:?}: {error}");
        assert!(
            !error.contains("hunter2") && !error.contains("u:p@"),
            "{error}"
        );
    }
}

#[test]
fn retention_has_defaults_and_zero_keeps_for_ever() {
    let delivery = load(&[]).unwrap().delivery;
    assert_eq!(delivery.sent_retention, Some(TimeDelta::days(30)));
    assert_eq!(delivery.dead_retention, Some(TimeDelta::days(90)));
    assert_eq!(delivery.unconfirmed_ttl, Some(TimeDelta::days(7)));
    let delivery = load(&[
        ("SENT_RETENTION", "0"),
        ("DEAD_RETENTION", "12h"),
        ("UNCONFIRMED_TTL", "0"),
    ])
    .unwrap()
    .delivery;
    assert_eq!(delivery.sent_retention, None);
    assert_eq!(delivery.dead_retention, Some(TimeDelta::hours(12)));
    assert_eq!(delivery.unconfirmed_ttl, None);
    for (name, value) in [("SENT_RETENTION", "30"), ("UNCONFIRMED_TTL", "10m")] {
        let error = load(&[(name, value)]).unwrap_err().to_string();
        assert!(
            error.contains(name) && error.contains("at least 1h"),
            "{error}"
        );
    }
}

#[test]
fn one_reminder_after_a_day_by_default_and_before_the_account_expires() {
    let delivery = load(&[]).unwrap().delivery;
    assert_eq!(delivery.reminder_after, Some(TimeDelta::hours(24)));
    let off = load(&[("REMINDER_AFTER", "0")]).unwrap().delivery;
    assert_eq!(off.reminder_after, None);
    let soon = load(&[("REMINDER_AFTER", "90m")]).unwrap().delivery;
    assert_eq!(soon.reminder_after, Some(TimeDelta::minutes(90)));
    // Kept for ever: any reminder time works.
    let kept = load(&[("UNCONFIRMED_TTL", "0"), ("REMINDER_AFTER", "30d")])
        .unwrap()
        .delivery;
    assert_eq!(kept.reminder_after, Some(TimeDelta::days(30)));
    for (vars, expected) in [
        (vec![("REMINDER_AFTER", "10s")], "at least 1m"),
        (vec![("REMINDER_AFTER", "soon")], "REMINDER_AFTER"),
        (
            vec![("REMINDER_AFTER", "7d"), ("UNCONFIRMED_TTL", "7d")],
            "shorter than UNCONFIRMED_TTL",
        ),
    ] {
        let error = load(&vars).unwrap_err().to_string();
        assert!(error.contains(expected), "{vars:?}: {error}");
    }
}
