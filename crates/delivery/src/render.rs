//! Owed messages into emails: a fresh signed link at send time, and the email templates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{ConfirmationTokens, MessageKind, OwedMessage, StopTokens};
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
];

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
                let ctx = ConfirmContext {
                    confirm_url: &confirm_url,
                    expires_in: human_duration(self.token_max_age.as_secs()),
                    stop_url: &stop_url,
                    code: &code,
                    code_url: &code_url,
                };
                let rendered = self.templates.render_email("email/confirm", &ctx)?;
                Ok(Message {
                    to: message.recipient.clone(),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    action_url: Some(confirm_url),
                })
            }
            // Not an email: the deliverer posts it (see `Deliverer`), it never gets here.
            MessageKind::Webhook => Err(TemplateError {
                name: "webhook".into(),
                reason: "a webhook is not rendered as an email".into(),
            }),
        }
    }
}

/// "1 hour", "90 minutes", "45 seconds".
pub fn human_duration(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(3600), "1 hour");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(90 * 60), "90 minutes");
        assert_eq!(human_duration(60), "1 minute");
        assert_eq!(human_duration(45), "45 seconds");
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
        let rendered = Templates::new(EMAIL_TEMPLATES, None)
            .render_email("email/confirm", &ctx)
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
            expires_in: human_duration(3600),
            stop_url: stop,
            code: "123456",
            code_url: "https://example.com/code",
        };
        let rendered = Templates::new(EMAIL_TEMPLATES, None)
            .render_email("email/confirm", &ctx)
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
            Templates::new(EMAIL_TEMPLATES, None),
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
}
