//! RFC 5322 message building, shared by the transports that speak MIME (file, SMTP, SES).

use std::fmt::Write as _;
use std::time::SystemTime;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::{MailError, Message};

/// The From mailbox and the domain used in our Message-IDs.
#[derive(Debug, Clone)]
pub struct Sender {
    mailbox: Mailbox,
    /// The `From:` header exactly as lettre writes it (folded lines included, ending in CRLF),
    /// for [`format_mime`]'s own writer; `None` if it could not be taken from lettre's output.
    from_header: Option<String>,
}

/// A From address that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "invalid sender address (MAIL_FROM): expected `name@example.com` or `Name <name@example.com>`"
)]
pub struct SenderError;

impl Sender {
    /// Parses `name@example.com` or `Display Name <name@example.com>`.
    pub fn parse(from: &str) -> Result<Self, SenderError> {
        let mailbox: Mailbox = from.trim().parse().map_err(|_| SenderError)?;
        let from_header = lettre_from_header(&mailbox);
        Ok(Self {
            mailbox,
            from_header,
        })
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

/// Builds the RFC 5322 form of a message: multipart/alternative text + HTML when there is HTML,
/// with our own Message-ID (returned alongside the bytes' structure).
pub(crate) fn build_mime(
    sender: &Sender,
    message: &Message,
    message_id: &str,
) -> Result<lettre::Message, MailError> {
    build_mime_with(sender, message, message_id, None, None)
}

/// [`build_mime`] with the date and the multipart boundary chosen (lettre's own otherwise).
fn build_mime_with(
    sender: &Sender,
    message: &Message,
    message_id: &str,
    date: Option<SystemTime>,
    boundary: Option<&str>,
) -> Result<lettre::Message, MailError> {
    let to = lettre::Address::new(message.to.local_part(), message.to.domain()).map_err(|e| {
        MailError::Permanent(format!("recipient rejected by the MIME builder: {e}"))
    })?;
    let builder = lettre::Message::builder()
        .from(sender.mailbox.clone())
        .to(Mailbox::new(None, to))
        .subject(message.subject.clone())
        .message_id(Some(message_id.to_owned()));
    let builder = match date {
        Some(date) => builder.date(date),
        None => builder,
    };
    let alternative = match boundary {
        Some(boundary) => MultiPart::alternative().boundary(boundary),
        None => MultiPart::alternative(),
    };
    let plain = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(readable_body(&message.text));
    let built = match &message.html {
        Some(html) => builder.multipart(
            alternative.singlepart(plain).singlepart(
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
/// (from the sender's address to the recipient's).
///
/// The common case, an ASCII subject of at most [`PLAIN_SUBJECT_MAX`] printable characters, a
/// recipient address of plain characters and bodies that go out as 7bit, is written here
/// directly, byte for byte what lettre's builder writes for the same date and boundary (a test
/// compares the two); lettre
/// builds the message, then reads its own headers back to find the envelope, which was ~17% of
/// the worker's CPU per email (BENCHMARKS.md). Anything else goes through [`build_mime`].
pub(crate) fn format_mime(
    sender: &Sender,
    message: &Message,
    message_id: &str,
) -> Result<(Envelope, Vec<u8>), MailError> {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    if let Some(formatted) = format_plain(sender, message, message_id, SystemTime::now(), &boundary)
    {
        return Ok(formatted);
    }
    let email = build_mime(sender, message, message_id)?;
    Ok((email.envelope().clone(), email.formatted()))
}

/// Longest subject [`format_mime`] writes itself: lettre folds longer header lines.
pub(crate) const PLAIN_SUBJECT_MAX: usize = 60;

/// [`format_mime`]'s own writer, with the date and boundary given; `None` when the message
/// is not the plain case.
fn format_plain(
    sender: &Sender,
    message: &Message,
    message_id: &str,
    date: SystemTime,
    boundary: &str,
) -> Option<(Envelope, Vec<u8>)> {
    let from = sender.from_header.as_deref()?;
    let plain_subject = message.subject.len() <= PLAIN_SUBJECT_MAX
        && message.subject.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !message.subject.starts_with(' ')
        && !message.subject.ends_with(' ')
        && !message.subject.contains("  ")
        && !message.subject.contains("=?");
    let plain_id = message_id.bytes().all(|b| b.is_ascii_graphic());
    let plain_to = message.to.local_part().bytes().all(is_atext_or_dot)
        && message
            .to
            .domain()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let plain_bodies = seven_bit(&message.text) && message.html.as_deref().is_none_or(seven_bit);
    if !(plain_subject && plain_id && plain_to && plain_bodies) {
        return None;
    }
    let to = lettre::Address::new(message.to.local_part(), message.to.domain()).ok()?;
    let envelope = Envelope::new(Some(sender.mailbox.email.clone()), vec![to]).ok()?;
    let date = chrono::DateTime::<chrono::Utc>::from(date).format("%a, %d %b %Y %H:%M:%S +0000");
    let size = 512 + message.text.len() * 2 + message.html.as_ref().map_or(0, |h| h.len() * 2);
    let mut out = String::with_capacity(size);
    out.push_str(from);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "To: {}\r\nSubject: {}\r\nMessage-ID: {message_id}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n",
        message.to.as_str(),
        message.subject,
    );
    const PLAIN: &str =
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    const HTML: &str =
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    match &message.html {
        None => {
            out.push_str(PLAIN);
            push_crlf(&mut out, &message.text);
            out.push_str("\r\n");
        }
        Some(html) => {
            let _ = write!(
                out,
                "Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{PLAIN}"
            );
            push_crlf(&mut out, &message.text);
            let _ = write!(out, "\r\n--{boundary}\r\n{HTML}");
            push_crlf(&mut out, html);
            let _ = write!(out, "\r\n--{boundary}--\r\n");
        }
    }
    Some((envelope, out.into_bytes()))
}

/// A character of an RFC 5322 dot-atom (letters, digits, ``!#$%&'*+-/=?^_`{|}~`` and `.`).
fn is_atext_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

/// `text` with every `\n` written as `\r\n`.
fn push_crlf(out: &mut String, text: &str) {
    let mut lines = text.split('\n');
    if let Some(first) = lines.next() {
        out.push_str(first);
    }
    for line in lines {
        out.push_str("\r\n");
        out.push_str(line);
    }
}

/// The `From:` header lettre writes for `mailbox`, taken from a message it formats.
fn lettre_from_header(mailbox: &Mailbox) -> Option<String> {
    let probe = lettre::Message::builder()
        .from(mailbox.clone())
        .to(mailbox.clone())
        .body(String::new())
        .ok()?
        .formatted();
    let text = String::from_utf8(probe).ok()?;
    let start = text.find("From: ")?;
    let mut end = start;
    // The header runs to the first line break not followed by a folded line.
    while let Some(offset) = text[end..].find("\r\n") {
        end += offset + 2;
        if !text[end..].starts_with([' ', '\t']) {
            return Some(text[start..end].to_owned());
        }
    }
    None
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
    use domain::EmailAddress;

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

    /// `format_plain` writes what lettre writes, byte for byte, with the same envelope.
    #[test]
    fn own_writer_matches_lettre_byte_for_byte() {
        let senders = [
            "Confirmation Service <no-reply@example.com>",
            "no-reply@example.com",
            "\"Quote, Inc.\" <a@b.co>",
            "Zoë Bot <z@example.com>",
        ];
        let recipients = [
            "User@Example.com",
            "a.b+tag@sub.example.org",
            "o'neil_x-y@example.co.uk",
        ];
        let link = format!("http://127.0.0.1:5003/confirm/{}", "Ab-_".repeat(60));
        let texts = [
            String::new(),
            "Hello".to_owned(),
            format!("Welcome!\n\nThanks for signing up. Please follow this link:\n\n{link}\n"),
            ".leading dot\n..two\n\nend\n\n".to_owned(),
        ];
        let mut subjects: Vec<String> = vec![
            "Please confirm your email".into(),
            "Confirm".into(),
            "a".into(),
            "x=y; (z) \"q\" <t> [u]: !#$%&'*+-/?^_`{|}~".into(),
        ];
        for n in 1..=PLAIN_SUBJECT_MAX {
            subjects.push("word ".repeat(n / 5 + 1)[..n].trim_end().to_owned());
            subjects.push("x".repeat(n));
        }
        // 2026-11-02 03:04:05 UTC: a one-digit day and hour.
        let dates = [
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_793_588_645),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
        ];
        let boundary = uuid::Uuid::new_v4().simple().to_string();
        let mut compared = 0;
        for from in senders {
            let sender = Sender::parse(from).unwrap();
            for to in recipients {
                for text in &texts {
                    for html in [
                        None,
                        Some(format!("<p><a href=\"{link}\">Confirm</a></p>\n")),
                    ] {
                        for subject in &subjects {
                            for date in dates {
                                let msg = Message {
                                    to: EmailAddress::parse(to).unwrap(),
                                    subject: subject.clone(),
                                    text: text.clone(),
                                    html: html.clone(),
                                    action_url: None,
                                };
                                let (envelope, ours) = format_plain(
                                    &sender,
                                    &msg,
                                    "<id1@example.com>",
                                    date,
                                    &boundary,
                                )
                                .expect("a plain message");
                                let theirs = build_mime_with(
                                    &sender,
                                    &msg,
                                    "<id1@example.com>",
                                    Some(date),
                                    Some(&boundary),
                                )
                                .unwrap();
                                assert_eq!(
                                    String::from_utf8(ours).unwrap(),
                                    String::from_utf8(theirs.formatted()).unwrap(),
                                    "from {from:?} to {to:?} subject {subject:?}"
                                );
                                assert_eq!(&envelope, theirs.envelope());
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 4 * 3 * 4 * 2 * 100, "{compared}");
    }

    /// What the own writer leaves to lettre still goes out, as lettre writes it.
    #[test]
    fn other_messages_go_through_lettre() {
        let sender = Sender::parse("no-reply@example.com").unwrap();
        let plain = Message {
            to: EmailAddress::parse("u@example.com").unwrap(),
            subject: "Confirm".into(),
            text: "Hi\n".into(),
            html: None,
            action_url: None,
        };
        let date = SystemTime::now();
        assert!(format_plain(&sender, &plain, "<i@example.com>", date, "b").is_some());
        let others = [
            Message {
                subject: "Grüße".into(),
                ..plain.clone()
            },
            Message {
                subject: "s".repeat(PLAIN_SUBJECT_MAX + 1),
                ..plain.clone()
            },
            Message {
                subject: "=?utf-8?q?x?=".into(),
                ..plain.clone()
            },
            Message {
                subject: "two  spaces".into(),
                ..plain.clone()
            },
            Message {
                text: "Grüße".into(),
                ..plain.clone()
            },
            Message {
                html: Some(format!("<p>{}</p>", "x".repeat(1000))),
                ..plain.clone()
            },
            Message {
                to: EmailAddress::parse("\"a b\"@example.com").unwrap_or(plain.to.clone()),
                text: "bare\rCR".into(),
                ..plain.clone()
            },
        ];
        for msg in &others {
            assert!(
                format_plain(&sender, msg, "<i@example.com>", date, "b").is_none(),
                "{:?}",
                msg.subject
            );
            let (envelope, bytes) = format_mime(&sender, msg, "<i@example.com>").unwrap();
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("Message-ID: <i@example.com>\r\n"), "{text}");
            assert_eq!(envelope.to().len(), 1);
        }
        let (_, bytes) = format_mime(&sender, &others[0], "<i@example.com>").unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("Subject: =?utf-8?"),
            "encoded by lettre: {text}"
        );
    }

    #[test]
    fn rejects_bad_sender() {
        assert!(Sender::parse("not an address").is_err());
        assert!(Sender::parse("").is_err());
    }
}
