//! Owed messages into emails: a fresh signed link at send time, and the email templates.

use std::time::Duration;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use domain::{
    ConfirmationTokens, Locale, MessageKind, OwedMessage, PasswordResetTokens, StopTokens,
};
use mailer::i18n::{Arg, Catalog, CatalogError, MessageFile};
use mailer::{Message, TemplateError, Templates};
use serde::Serialize;

/// The email templates compiled into the binary; a directory can override any of them.
pub const EMAIL_TEMPLATES: &[(&str, &str)] = &[
    (
        "email/confirm/subject.txt",
        include_str!("../../../templates/email/confirm/subject.txt"),
    ),
    (
        "email/confirm/body.txt",
        include_str!("../../../templates/email/confirm/body.txt"),
    ),
    (
        "email/confirm/body.html",
        include_str!("../../../templates/email/confirm/body.html"),
    ),
    (
        "email/password_reset/subject.txt",
        include_str!("../../../templates/email/password_reset/subject.txt"),
    ),
    (
        "email/password_reset/body.txt",
        include_str!("../../../templates/email/password_reset/body.txt"),
    ),
    (
        "email/password_reset/body.html",
        include_str!("../../../templates/email/password_reset/body.html"),
    ),
    (
        "email/password_changed/subject.txt",
        include_str!("../../../templates/email/password_changed/subject.txt"),
    ),
    (
        "email/password_changed/body.txt",
        include_str!("../../../templates/email/password_changed/body.txt"),
    ),
    (
        "email/password_changed/body.html",
        include_str!("../../../templates/email/password_changed/body.html"),
    ),
];

/// The emails' texts per language (`templates/locales/<locale>/email.ftl`), English first (the
/// default). A directory can override any message (`locales/<locale>/email.ftl` under it).
pub const EMAIL_MESSAGES: &[MessageFile] = &[
    MessageFile {
        locale: "en",
        file: "email.ftl",
        source: include_str!("../../../templates/locales/en/email.ftl"),
    },
    MessageFile {
        locale: "zh-CN",
        file: "email.ftl",
        source: include_str!("../../../templates/locales/zh-CN/email.ftl"),
    },
];

/// The email templates with their messages, each overridable from `override_dir` (a template
/// for one language as `<locale>/email/confirm/body.html`). An override message file that does
/// not parse is an error.
pub fn email_templates(override_dir: Option<PathBuf>) -> Result<Templates, CatalogError> {
    let catalog = Catalog::new(EMAIL_MESSAGES, override_dir.as_deref())?;
    Ok(Templates::localized(EMAIL_TEMPLATES, catalog, override_dir))
}

#[derive(Serialize)]
struct ConfirmContext<'a> {
    confirm_url: &'a str,
    expires_in: String,
    /// "I did not sign up: stop emails to this address".
    stop_url: &'a str,
    /// The six-digit code beside the link, and the page that takes it.
    code: &'a str,
    code_url: &'a str,
}

/// What the password-reset templates show.
#[derive(Serialize)]
struct ResetContext<'a> {
    reset_url: &'a str,
    expires_in: String,
}

/// What the "password changed" templates show.
#[derive(Serialize)]
struct ChangedContext<'a> {
    /// The "Forgot your password?" page, for someone who did not change it.
    forgot_url: &'a str,
}

/// Turns an owed message into the email to send. The tokens are made here, at send time, so a
/// retried email never carries a stale link: the confirmation link (`{base_url}/confirm/{token}`)
/// and the stop link (`{base_url}/stop/{token}`, a [`StopTokens`] token over the same keys).
#[derive(Debug, Clone)]
pub struct Renderer {
    templates: Templates,
    tokens: ConfirmationTokens,
    stop_tokens: StopTokens,
    /// The public root URL without a trailing `/` (`https://example.com`, or with a path).
    base_url: String,
    /// How long a confirmation link stays valid.
    token_max_age: Duration,
}

impl Renderer {
    /// A renderer with these templates and keys, building links on `base_url` (the public root
    /// URL, e.g. `https://example.com`) that stay valid for `token_max_age`.
    pub fn new(
        templates: Templates,
        tokens: ConfirmationTokens,
        base_url: &str,
        token_max_age: Duration,
    ) -> Self {
        Self {
            templates,
            stop_tokens: tokens.stop_tokens(),
            tokens,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token_max_age,
        }
    }

    /// The email for `message`, with links issued at `now`.
    pub fn render(
        &self,
        message: &OwedMessage,
        now: DateTime<Utc>,
    ) -> Result<Message, TemplateError> {
        match message.kind {
            MessageKind::Confirm => {
                let token = self.tokens.issue(&message.recipient, now.timestamp());
                let confirm_url = format!("{}/confirm/{token}", self.base_url);
                let stop = self.stop_tokens.issue(&message.recipient, now.timestamp());
                let stop_url = format!("{}/stop/{stop}", self.base_url);
                let code = self.tokens.codes().code(message.id);
                let code_url = format!("{}/code", self.base_url);
                let locale = message.locale.as_str();
                let ctx = ConfirmContext {
                    confirm_url: &confirm_url,
                    expires_in: duration_in(
                        &self.templates,
                        message.locale,
                        self.token_max_age.as_secs(),
                    ),
                    stop_url: &stop_url,
                    code: &code,
                    code_url: &code_url,
                };
                let rendered = self
                    .templates
                    .render_email_in(locale, "email/confirm", &ctx)?;
                Ok(Message {
                    to: message.recipient.clone(),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    action_url: Some(confirm_url),
                })
            }
            MessageKind::PasswordReset => {
                // Claimed reset emails carry their binding; one without is not a reset email
                // this version made (see `MessageStore::claim`).
                let binding = message
                    .password_binding
                    .as_deref()
                    .ok_or_else(|| TemplateError {
                        name: "email/password_reset".into(),
                        reason: "the claim gave no password binding".into(),
                    })?;
                let token =
                    self.tokens
                        .reset_tokens()
                        .issue(&message.recipient, binding, now.timestamp());
                let reset_url = format!("{}/reset/{token}", self.base_url);
                let ctx = ResetContext {
                    reset_url: &reset_url,
                    expires_in: duration_in(
                        &self.templates,
                        message.locale,
                        PasswordResetTokens::MAX_AGE.as_secs(),
                    ),
                };
                self.email(
                    message,
                    "email/password_reset",
                    &ctx,
                    Some(reset_url.clone()),
                )
            }
            MessageKind::PasswordChanged => {
                let forgot_url = format!("{}/forgot", self.base_url);
                let ctx = ChangedContext {
                    forgot_url: &forgot_url,
                };
                self.email(message, "email/password_changed", &ctx, None)
            }
            // Not an email: the deliverer posts it (see `Deliverer`), it never gets here.
            MessageKind::Webhook => Err(TemplateError {
                name: "webhook".into(),
                reason: "a webhook is not rendered as an email".into(),
            }),
        }
    }
}

impl Renderer {
    /// `message`'s email from the templates under `name`, in its account's language.
    fn email(
        &self,
        message: &OwedMessage,
        name: &str,
        ctx: &impl Serialize,
        action_url: Option<String>,
    ) -> Result<Message, TemplateError> {
        let rendered = self
            .templates
            .render_email_in(message.locale.as_str(), name, ctx)?;
        Ok(Message {
            to: message.recipient.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            action_url,
        })
    }
}

/// A duration in whole hours, minutes or seconds (the largest unit that divides it), in
/// `locale`, from the `duration` message: "1 hour", "90 minutes"; "2 小时".
pub fn duration_in(templates: &Templates, locale: Locale, seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    templates.message(
        locale.as_str(),
        "duration",
        &[
            ("n", Arg::Number(i64::try_from(n).unwrap_or(i64::MAX))),
            ("unit", Arg::Text(unit.to_owned())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message the email templates name exists in every locale (and no locale has one
    /// the default has not): a message added to one `email.ftl` only fails here.
    #[test]
    fn every_email_message_exists_in_every_locale() {
        let templates = email_templates(None).unwrap();
        let catalog = templates.catalog().unwrap();
        let mut ids = mailer::i18n::ids_in_templates(EMAIL_TEMPLATES);
        assert!(ids.contains("email-subject") && ids.contains("email-stop"));
        ids.insert("duration".to_owned());
        assert_eq!(
            catalog.locales().collect::<Vec<_>>(),
            Locale::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>()
        );
        let missing = catalog.missing(ids.iter().map(String::as_str));
        assert!(missing.is_empty(), "missing (locale, id): {missing:?}");
    }

    /// The email of a zh-CN account: every text in Chinese, the links, the code and the
    /// lifetime as in English, markup in a variable still escaped.
    #[test]
    fn a_chinese_account_gets_a_chinese_email() {
        let renderer = Renderer::new(
            email_templates(None).unwrap(),
            ConfirmationTokens::new(&["k"]).unwrap(),
            "https://example.com",
            Duration::from_secs(7200),
        );
        let message = OwedMessage {
            id: domain::MessageId(7),
            user_id: domain::UserId(3),
            kind: MessageKind::Confirm,
            recipient: domain::EmailAddress::parse("li@example.com").unwrap(),
            status: domain::MessageStatus::Sending,
            attempts: 1,
            created_at: DateTime::from_timestamp(1_600_000_000, 0).unwrap(),
            locale: Locale::ZhCn,
            password_binding: None,
        };
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let email = renderer.render(&message, now).unwrap();
        assert_eq!(email.subject, "请确认您的账户");
        for line in [
            "感谢您的注册。请打开此链接并点击“确认我的账户”以激活您的账户。",
            "在其他设备上阅读此邮件？请在 https://example.com/code 输入以下验证码：",
            "链接和验证码的有效期为 2 小时。",
            "我没有注册：不要再向此地址发送邮件",
        ] {
            assert!(email.text.contains(line), "{line}\n{}", email.text);
        }
        assert!(email.text.contains("https://example.com/confirm/"));
        let html = email.html.unwrap();
        assert!(html.contains("<html lang=\"zh-CN\">"));
        assert!(html.contains("<title>请确认您的账户</title>"));
        // The code page is a link inside the translated sentence.
        assert!(
            html.contains("请在 <a href=\"https:&#x2f;&#x2f;example.com&#x2f;code\""),
            "{html}"
        );
        assert!(!html.contains("Confirm"), "{html}");
    }

    #[test]
    fn durations_in_each_language() {
        let t = email_templates(None).unwrap();
        let en = |s| duration_in(&t, Locale::En, s);
        assert_eq!(en(3600), "1 hour");
        assert_eq!(en(7200), "2 hours");
        assert_eq!(en(90 * 60), "90 minutes");
        assert_eq!(en(60), "1 minute");
        assert_eq!(en(45), "45 seconds");
        assert_eq!(en(1), "1 second");
        let zh = |s| duration_in(&t, Locale::ZhCn, s);
        assert_eq!(zh(3600), "1 小时");
        assert_eq!(zh(90 * 60), "90 分钟");
        assert_eq!(zh(45), "45 秒");
    }

    /// The confirmation email as the embedded templates render it, with markup fed into every
    /// variable: compared with the committed snapshot (after a deliberate template change, review
    /// it with `cargo insta review`, or accept it with `INSTA_UPDATE=always`), and checked for
    /// escaping, the link, its lifetime and the "ignore it" line.
    #[test]
    fn confirmation_email_snapshot_with_markup_in_every_variable() {
        let hostile_url = "http://e.example/confirm/\"><script>alert(1)</script>&x='y'";
        let hostile_stop = "http://e.example/stop/\"><img src=x onerror=alert(2)>";
        let ctx = ConfirmContext {
            confirm_url: hostile_url,
            expires_in: "<b>1 hour</b> & \"more\"".to_owned(),
            stop_url: hostile_stop,
            code: "012345",
            code_url: "http://e.example/code?<x>",
        };
        let rendered = email_templates(None)
            .unwrap()
            .render_email_in("en", "email/confirm", &ctx)
            .unwrap();
        let html = rendered.html.clone().expect("an HTML part");
        let snapshot = format!(
            "--- subject\n{}\n--- text\n{}\n--- html\n{}\n",
            rendered.subject, rendered.text, html
        );
        insta::assert_snapshot!("confirm_email", snapshot);

        assert_eq!(rendered.subject, "Confirm Your Account");
        // Text: the values verbatim (it is not HTML), with the lifetime and the "ignore" line.
        assert!(rendered.text.contains(hostile_url));
        assert!(
            rendered
                .text
                .contains("The link and the code work for <b>1 hour</b>")
        );
        // The code, leading zero kept, in both parts, and its page escaped in the HTML.
        assert!(rendered.text.contains("\n012345\n"));
        assert!(html.contains(">012345</p>"));
        assert!(html.contains("http:&#x2f;&#x2f;e.example&#x2f;code?&lt;x&gt;"));
        assert!(
            rendered
                .text
                .contains("If you did not sign up, you can ignore this email")
        );
        // HTML: nothing from a variable survives as markup.
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("\"><script"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert!(html.contains("&lt;b&gt;1 hour&lt;&#x2f;b&gt; &amp; &quot;more&quot;"));
        assert!(html.contains("If you did not sign up, you can ignore this email"));
        // The stop link, in both parts, escaped in the HTML.
        assert!(rendered.text.trim_end().ends_with(&format!(
            "I did not sign up: stop emails to this address\n{hostile_stop}"
        )));
        assert!(!html.contains("<img"));
        assert!(html.contains("I did not sign up: stop emails to this address</a>"));
        assert!(rendered.text.contains(
            "Please open this link and press \"Confirm my account\" to activate your account."
        ));
        assert!(
            rendered
                .text
                .contains("nothing happens unless the button on that page is pressed.")
        );
    }

    /// With a normal link the HTML part links to it exactly (escaping only `/` as `&#x2f;`, which
    /// every mail client decodes), so the multipart message carries one working link in each part.
    #[test]
    fn the_html_link_decodes_to_the_text_link() {
        let url = "https://example.com/confirm/eyJhIjoxfQ.Zx4-_A.abc_DEF-123";
        let stop = "https://example.com/stop/eyJhIjoxfQ.Zx4-_A.xyz_DEF-123";
        let ctx = ConfirmContext {
            confirm_url: url,
            expires_in: "1 hour".to_owned(),
            stop_url: stop,
            code: "123456",
            code_url: "https://example.com/code",
        };
        let rendered = email_templates(None)
            .unwrap()
            .render_email_in("en", "email/confirm", &ctx)
            .unwrap();
        let html = rendered.html.unwrap();
        assert!(html.contains(&format!("href=\"{}\"", url.replace('/', "&#x2f;"))));
        assert!(rendered.text.contains(&format!("{url}\n")));
        assert!(
            rendered
                .text
                .contains("The link and the code work for 1 hour.")
        );
        assert!(html.contains(&format!("href=\"{}\"", stop.replace('/', "&#x2f;"))));
        assert!(rendered.text.trim_end().ends_with(&format!("\n{stop}")));
    }

    /// The renderer's links: a confirmation token and a stop token for the recipient, issued
    /// at send time, on BASE_URL; neither verifies as the other.
    #[test]
    fn the_email_carries_a_confirm_link_and_a_stop_link_made_at_send_time() {
        let tokens = ConfirmationTokens::new(&["k"]).unwrap();
        let stop_tokens = StopTokens::new(&["k"]).unwrap();
        let renderer = Renderer::new(
            email_templates(None).unwrap(),
            tokens.clone(),
            "https://example.com/app/",
            Duration::from_secs(3600),
        );
        let message = OwedMessage {
            id: domain::MessageId(7),
            user_id: domain::UserId(3),
            kind: MessageKind::Confirm,
            recipient: domain::EmailAddress::parse("Victim+1@gmail.com").unwrap(),
            status: domain::MessageStatus::Sending,
            attempts: 1,
            created_at: DateTime::from_timestamp(1_600_000_000, 0).unwrap(),
            locale: Locale::En,
            password_binding: None,
        };
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let email = renderer.render(&message, now).unwrap();
        let link = |prefix: &str| {
            let start = email.text.find(prefix).expect(prefix) + prefix.len();
            email.text[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        };
        let confirm = link("https://example.com/app/confirm/");
        let stop = link("https://example.com/app/stop/");
        let verified = stop_tokens.check(&stop, now.timestamp()).unwrap();
        assert_eq!(verified.payload, "Victim+1@gmail.com");
        assert_eq!(verified.issued_at, 1_700_000_000);
        assert!(tokens.check(&stop, None, now.timestamp()).is_err());
        assert!(stop_tokens.check(&confirm, now.timestamp()).is_err());
        assert_eq!(
            tokens
                .check(&confirm, None, now.timestamp())
                .unwrap()
                .payload,
            "Victim+1@gmail.com"
        );
        assert_eq!(
            email.action_url.as_deref(),
            Some(format!("https://example.com/app/confirm/{confirm}").as_str())
        );
        // The message's code, and the page that takes it, on BASE_URL.
        let code = link("https://example.com/app/code instead:\n");
        assert_eq!(code, tokens.codes().code(message.id));
        assert!(tokens.codes().matches(message.id, &code));
    }

    /// The reset email's link verifies with the reset tokens and carries the claim's binding;
    /// the notice points at the "Forgot your password?" page; both in the account's language.
    #[test]
    fn reset_and_changed_emails_in_both_languages() {
        let tokens = ConfirmationTokens::new(&["k"]).unwrap();
        let renderer = Renderer::new(
            email_templates(None).unwrap(),
            tokens.clone(),
            "https://example.com/app/",
            Duration::from_secs(3600),
        );
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut message = OwedMessage {
            id: domain::MessageId(8),
            user_id: domain::UserId(3),
            kind: MessageKind::PasswordReset,
            recipient: domain::EmailAddress::parse("li@example.com").unwrap(),
            status: domain::MessageStatus::Sending,
            attempts: 1,
            created_at: now,
            locale: Locale::En,
            password_binding: Some("0123456789abcdef".into()),
        };
        let email = renderer.render(&message, now).unwrap();
        assert_eq!(email.subject, "Reset Your Password");
        let url = email.action_url.clone().unwrap();
        let token = url.strip_prefix("https://example.com/app/reset/").unwrap();
        let reset = tokens.reset_tokens().check(token, now.timestamp()).unwrap();
        assert_eq!(reset.email, "li@example.com");
        assert_eq!(reset.binding, "0123456789abcdef");
        assert!(email.text.contains(&url) && email.html.as_deref().unwrap().contains(token));
        assert!(
            email.text.contains("The link works once, for 30 minutes."),
            "{}",
            email.text
        );

        message.locale = Locale::ZhCn;
        let email = renderer.render(&message, now).unwrap();
        assert_eq!(email.subject, "重置您的密码");
        assert!(email.text.contains("有效期为 30 分钟"), "{}", email.text);

        message.password_binding = None;
        assert!(
            renderer.render(&message, now).is_err(),
            "a reset email needs its binding"
        );

        message.kind = MessageKind::PasswordChanged;
        let email = renderer.render(&message, now).unwrap();
        assert_eq!(email.subject, "您的密码已更改");
        assert!(email.text.contains("https://example.com/app/forgot"));
        assert_eq!(email.action_url, None);
        message.locale = Locale::En;
        let email = renderer.render(&message, now).unwrap();
        assert_eq!(email.subject, "Your Password Was Changed");
        assert!(
            email
                .html
                .unwrap()
                .contains("every signed-in browser was signed out")
        );
    }
}
