//! Provider error texts made safe for logs and the outbox's `last_error`.

use crate::Message;

/// Server replies are cut to this many bytes in error messages.
const MAX_DETAIL_LEN: usize = 300;

/// Makes provider error text safe for logs: the recipient address (in any letter case) becomes
/// its masked form, the message's link disappears, line breaks become spaces, and the text is
/// cut to a bounded length.
pub(crate) fn redact(text: &str, message: &Message) -> String {
    let mut out = message.to.mask_in(text);
    if let Some(link) = message.action_url.as_deref().filter(|l| !l.is_empty()) {
        out = out.replace(link, "<link>");
    }
    let out = out.replace(['\r', '\n'], " ");
    if out.len() <= MAX_DETAIL_LEN {
        return out;
    }
    let mut end = MAX_DETAIL_LEN;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &out[..end])
}

#[cfg(test)]
mod tests {
    use confirm_email_address::EmailAddress;

    use super::*;

    #[test]
    fn redaction_hides_recipient_and_link() {
        let message = Message {
            to: EmailAddress::parse("Alice.Smith@example.org").unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: Some("http://x/confirm/TOKEN".into()),
        };
        let text = "permanent error (550): 5.1.1 <alice.smith@EXAMPLE.org>: Recipient \
                    address rejected; also Alice.Smith@example.org\r\nsee http://x/confirm/TOKEN";
        let out = redact(text, &message);
        assert!(!out.to_ascii_lowercase().contains("alice.smith"), "{out}");
        assert!(!out.contains("TOKEN"), "{out}");
        assert!(out.contains("A***@example.org"), "{out}");
        assert!(out.contains("5.1.1"), "{out}");
        assert!(!out.contains('\n'), "{out}");
        let long = redact(&"é".repeat(400), &message);
        assert!(long.len() <= MAX_DETAIL_LEN + 3, "{}", long.len());
    }
}
