//! RFC 5322 message building, shared by the transports that speak MIME (file, SMTP, SES).

use std::sync::Arc;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::dkim::{DkimError, DkimSigner};
use crate::{MailError, Message};

/// The From mailbox, the domain used in our Message-IDs, and the DKIM signer, if any.
#[derive(Debug, Clone)]
pub struct Sender {
    mailbox: Mailbox,
    dkim: Option<Arc<DkimSigner>>,
    /// The envelope sender (SMTP `MAIL FROM`, where bounces go), when it is not the From
    /// address.
    return_path: Option<lettre::Address>,
}

/// A From address that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
/// A From mailbox that [`Sender::parse`] refused.
#[error(
    "invalid sender address (MAIL_FROM): expected `name@example.com` or `Name <name@example.com>`"
)]
pub struct SenderError;

/// A return path that [`Sender::with_return_path`] refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid return path (MAIL_RETURN_PATH): expected a bare address, `bounces@example.com`")]
pub struct ReturnPathError;

impl Sender {
    /// Parses `name@example.com` or `Display Name <name@example.com>`.
    pub fn parse(from: &str) -> Result<Self, SenderError> {
        let mailbox: Mailbox = from.trim().parse().map_err(|_| SenderError)?;
        Ok(Self {
            mailbox,
            dkim: None,
            return_path: None,
        })
    }

    /// Sends with `address` as the envelope sender (SMTP `MAIL FROM`, which receivers write
    /// into `Return-Path` and send bounces to) instead of the From address; with SES it is the
    /// `FeedbackForwardingEmailAddress`. A bare address: `bounces@example.com`.
    pub fn with_return_path(self, address: &str) -> Result<Self, ReturnPathError> {
        let address: lettre::Address = address.trim().parse().map_err(|_| ReturnPathError)?;
        Ok(Self {
            return_path: Some(address),
            ..self
        })
    }

    /// The envelope sender, if it is not the From address.
    pub fn return_path(&self) -> Option<String> {
        self.return_path.as_ref().map(ToString::to_string)
    }

    /// Signs every message with DKIM. Refused when the signer's domain does not cover the
    /// From address's domain (receivers' DMARC checks would fail anyway).
    pub fn with_dkim(self, signer: DkimSigner) -> Result<Self, DkimError> {
        signer.check_alignment(self.mailbox.email.domain())?;
        Ok(Self {
            dkim: Some(Arc::new(signer)),
            ..self
        })
    }

    /// The DKIM signer, if messages are signed.
    pub fn dkim(&self) -> Option<&DkimSigner> {
        self.dkim.as_deref()
    }

    /// The address alone: `addr@example.com` (the envelope's sender).
    pub fn email(&self) -> String {
        self.mailbox.email.to_string()
    }

    /// The mailbox as a header value: `"Name" <addr@example.com>` or `addr@example.com`.
    pub fn to_header_value(&self) -> String {
        self.mailbox.to_string()
    }

    /// A fresh globally unique Message-ID on the sender's domain.
    pub fn new_message_id(&self) -> String {
        format!(
            "<{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.mailbox.email.domain()
        )
    }
}

/// Builds the RFC 5322 form of a message with lettre: multipart/alternative text + HTML when
/// there is HTML, with our own Message-ID, and its envelope.
///
/// lettre's own writer won over a hand-written one for the common case: in alternating drains
/// the hand-written writer gave less than the 15% a hand-written copy of a library must earn
/// (the A/B is in BENCHMARKS.md's notes), once lettre is given the envelope instead of parsing
/// it back out of the headers it wrote.
fn build_mime(
    sender: &Sender,
    message: &Message,
    message_id: &str,
) -> Result<lettre::Message, MailError> {
    let to = lettre::Address::new(message.to.local_part(), message.to.domain()).map_err(|e| {
        MailError::Permanent(format!("recipient rejected by the MIME builder: {e}"))
    })?;
    let envelope_from = sender
        .return_path
        .clone()
        .unwrap_or_else(|| sender.mailbox.email.clone());
    let envelope = Envelope::new(Some(envelope_from), vec![to.clone()])
        .map_err(|e| MailError::Permanent(format!("invalid envelope: {e}")))?;
    let builder = lettre::Message::builder()
        .envelope(envelope)
        .from(sender.mailbox.clone())
        .to(Mailbox::new(None, to))
        .subject(message.subject.clone())
        .message_id(Some(message_id.to_owned()));
    let plain = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(readable_body(&message.text));
    let built = match &message.html {
        Some(html) => builder.multipart(
            MultiPart::alternative().singlepart(plain).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(readable_body(html)),
            ),
        ),
        None => builder.singlepart(plain),
    };
    built.map_err(|e| MailError::Permanent(format!("could not build the message: {e}")))
}

/// The RFC 5322 form of a message, as [`build_mime`] writes it, and the envelope it is sent in
/// (from the sender's address to the recipient's). SES sends these bytes (it signs with its
/// own DKIM keys).
pub(crate) fn format_mime(
    sender: &Sender,
    message: &Message,
    message_id: &str,
) -> Result<(Envelope, Vec<u8>), MailError> {
    let email = build_mime(sender, message, message_id)?;
    Ok((email.envelope().clone(), email.formatted()))
}

/// [`format_mime`], DKIM-signed when the sender has a signer: the bytes SMTP and the file
/// transport send, signature first.
#[cfg(any(feature = "smtp", feature = "file", test))]
pub(crate) fn format_signed_mime(
    sender: &Sender,
    message: &Message,
    message_id: &str,
) -> Result<(Envelope, Vec<u8>), MailError> {
    let (envelope, formatted) = format_mime(sender, message, message_id)?;
    let Some(dkim) = &sender.dkim else {
        return Ok((envelope, formatted));
    };
    let field = dkim
        .sign(&formatted, chrono::Utc::now().timestamp())
        .map_err(|e| MailError::Account(format!("DKIM signing failed: {e}")))?;
    let mut signed = Vec::with_capacity(field.len() + formatted.len());
    signed.extend_from_slice(field.as_bytes());
    signed.extend_from_slice(&formatted);
    Ok((envelope, signed))
}

/// Whether RFC 5322 lets `content` go out as is (7bit): ASCII without NUL or bare CR, lines
/// of at most 998 octets.
fn seven_bit(content: &str) -> bool {
    content.is_ascii()
        && !content.contains(['\0', '\r'])
        && content.split('\n').all(|line| line.len() <= 998)
}

/// Plain 7bit when RFC 5322 allows it (ASCII without NUL or bare CR, lines of at most 998
/// octets), so links stay whole and clickable even in a raw `.eml`; lettre's own chooser would
/// switch to quoted-printable past 76 characters and break them across lines. Anything else is
/// left to lettre (quoted-printable or base64).
fn readable_body(content: &str) -> Body {
    if seven_bit(content) {
        let crlf = content.replace('\n', "\r\n");
        return Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit);
    }
    Body::new(content.to_owned())
}

#[cfg(test)]
mod tests {
    use confirm_email_address::EmailAddress;

    use super::*;

    #[test]
    fn builds_multipart_alternative_with_our_message_id() {
        let sender = Sender::parse("Confirm Bot <no-reply@example.com>").unwrap();
        let id = sender.new_message_id();
        assert!(id.starts_with('<') && id.ends_with("@example.com>"));
        let msg = Message {
            to: EmailAddress::parse("User@Example.com").unwrap(),
            subject: "Confirm Your Account".into(),
            text: "Hello\nhttp://x/confirm/abc\n".into(),
            html: Some("<p>Hello</p>".into()),
            action_url: None,
        };
        let bytes = String::from_utf8(build_mime(&sender, &msg, &id).unwrap().formatted()).unwrap();
        assert!(bytes.contains("To: User@example.com"), "{bytes}");
        assert!(
            bytes.contains("From: \"Confirm Bot\" <no-reply@example.com>"),
            "{bytes}"
        );
        assert!(bytes.contains(&format!("Message-ID: {id}")), "{bytes}");
        assert!(bytes.contains("multipart/alternative"));
        assert!(bytes.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(bytes.contains("Content-Type: text/html; charset=utf-8"));
        assert!(bytes.contains("http://x/confirm/abc"));
    }

    #[test]
    fn long_ascii_lines_stay_whole_and_non_ascii_is_encoded() {
        let sender = Sender::parse("no-reply@example.com").unwrap();
        let link = format!("http://127.0.0.1:5003/confirm/{}", "A".repeat(120));
        let msg = Message {
            to: EmailAddress::parse("u@example.com").unwrap(),
            subject: "S".into(),
            text: format!("Click:\n{link}\n"),
            html: Some(format!("<a href=\"{link}\">x</a>")),
            action_url: None,
        };
        let bytes = String::from_utf8(
            build_mime(&sender, &msg, "<id@example.com>")
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert_eq!(bytes.matches(&link).count(), 2, "{bytes}");
        assert!(bytes.contains("Content-Transfer-Encoding: 7bit"));

        let msg = Message {
            text: "Grüße".into(),
            html: None,
            ..msg
        };
        let bytes = String::from_utf8(
            build_mime(&sender, &msg, "<id@example.com>")
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(!bytes.contains("Grüße"), "non-ASCII is transfer-encoded");
    }

    /// A text-only message to `to`.
    fn message_to(to: &str) -> Message {
        Message {
            to: EmailAddress::parse(to).unwrap(),
            subject: String::new(),
            text: "Hi\n".into(),
            html: None,
            action_url: None,
        }
    }

    /// The envelope goes from the sender's address to the recipient's, and the bytes are the
    /// message as built, non-ASCII subjects encoded.
    #[test]
    fn formats_the_message_with_its_envelope() {
        let sender = Sender::parse("Confirm Bot <no-reply@example.com>").unwrap();
        let msg = Message {
            subject: "Grüße".into(),
            ..message_to("User@Example.com")
        };
        let (envelope, bytes) = format_mime(&sender, &msg, "<i@example.com>").unwrap();
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("no-reply@example.com")
        );
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["User@example.com"]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Message-ID: <i@example.com>\r\n"), "{text}");
        assert!(
            text.contains("Subject: =?utf-8?"),
            "encoded by lettre: {text}"
        );
        assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
    }

    /// MAIL_RETURN_PATH: the envelope sender (where bounces go) changes; the From header does
    /// not.
    #[test]
    fn a_return_path_is_the_envelope_sender_only() {
        let sender = Sender::parse("Confirm Bot <no-reply@example.com>")
            .unwrap()
            .with_return_path(" bounces+confirm@mail.example.com ")
            .unwrap();
        assert_eq!(
            sender.return_path().as_deref(),
            Some("bounces+confirm@mail.example.com")
        );
        let msg = Message {
            subject: "S".into(),
            ..message_to("u@example.com")
        };
        let (envelope, bytes) = format_mime(&sender, &msg, "<i@example.com>").unwrap();
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("bounces+confirm@mail.example.com")
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("From: \"Confirm Bot\" <no-reply@example.com>\r\n"),
            "{text}"
        );
        assert!(!text.contains("bounces+confirm"), "{text}");
        for bad in ["", "Name <b@example.com>", "no at sign"] {
            assert!(
                Sender::parse("a@example.com")
                    .unwrap()
                    .with_return_path(bad)
                    .is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(Sender::parse("a@example.com").unwrap().return_path(), None);
    }

    #[test]
    fn rejects_bad_sender() {
        assert!(Sender::parse("not an address").is_err());
        assert!(Sender::parse("").is_err());
    }

    /// With a signer, the message starts with its DKIM-Signature over the headers lettre wrote
    /// (unsigned for SES, which signs itself); a signer for another domain than From's is
    /// refused.
    #[test]
    fn signs_with_dkim_when_the_sender_has_a_signer() {
        let key = include_bytes!("dkim/tests/ed25519.pem");
        let signer = || DkimSigner::from_pem("example.com", "s1", key).unwrap();
        let sender = Sender::parse("Confirm Bot <no-reply@mail.example.com>")
            .unwrap()
            .with_dkim(signer())
            .unwrap();
        assert_eq!(sender.dkim().map(DkimSigner::selector), Some("s1"));
        let msg = Message {
            to: EmailAddress::parse("user@example.net").unwrap(),
            subject: "Confirm Your Account".into(),
            text: "Hi\n".into(),
            html: Some("<p>Hi</p>".into()),
            action_url: None,
        };
        let text = String::from_utf8(
            format_signed_mime(&sender, &msg, "<i@mail.example.com>")
                .unwrap()
                .1,
        )
        .unwrap();
        let unfolded = text.replace("\r\n\t", " ");
        assert!(
            unfolded.starts_with(
                "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=s1;"
            ),
            "{text}"
        );
        let h: String = text
            .split("h=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert_eq!(
            h,
            "from:from:to:to:subject:subject:date:message-id:mime-version:content-type"
        );

        let unsigned = format_mime(&sender, &msg, "<i@mail.example.com>")
            .unwrap()
            .1;
        assert!(
            !unsigned.starts_with(b"DKIM-Signature"),
            "SES bytes are not signed"
        );

        let other = Sender::parse("no-reply@example.org")
            .unwrap()
            .with_dkim(signer());
        assert!(
            matches!(other, Err(DkimError::Alignment { .. })),
            "{other:?}"
        );
    }
}
