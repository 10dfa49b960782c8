//! The development transport: every message becomes an `.eml` file.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::mime::{Sender, format_signed_mime};
use crate::{MailError, Mailer, Message, Sent};

/// Writes each message as an RFC 5322 `.eml` file into a directory (created if missing) and
/// logs the file's path (and the masked recipient) at INFO; the link is in the file, never in
/// the log.
///
/// Files appear atomically (written under a temporary name, then renamed), named
/// `<UTC time>-<random>.eml` so they sort by time.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    sender: Sender,
}

impl FileMailer {
    /// Writes each message from `sender` as an `.eml` file in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, sender: Sender) -> Self {
        Self {
            dir: dir.into(),
            sender,
        }
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let message_id = self.sender.new_message_id();
        let bytes = format_signed_mime(&self.sender, message, &message_id)?.1;
        let stem = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        let io = |e: std::io::Error| {
            MailError::Transient(format!("could not write to the mail directory: {e}"))
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let tmp = self.dir.join(format!(".{stem}.tmp"));
        let path = self.dir.join(format!("{stem}.eml"));
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        tracing::info!(
            to = %message.to.masked(),
            file = %path.display(),
            "email written to file (development transport); the link to continue is in it"
        );
        Ok(Sent {
            provider_message_id: Some(message_id),
        })
    }

    fn provider(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use confirm_email_address::EmailAddress;

    use super::*;

    #[tokio::test]
    async fn writes_one_eml_per_message_into_a_new_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/mail");
        let mailer = FileMailer::new(&dir, Sender::parse("no-reply@example.com").unwrap());
        let msg = Message {
            to: EmailAddress::parse("someone@example.com").unwrap(),
            subject: "Confirm Your Account".into(),
            text: "link: http://127.0.0.1:5003/confirm/tok\n".into(),
            html: Some("<a href=\"http://127.0.0.1:5003/confirm/tok\">confirm</a>".into()),
            action_url: Some("http://127.0.0.1:5003/confirm/tok".into()),
        };
        let sent = mailer.send(&msg).await.unwrap();
        mailer.send(&msg).await.unwrap();

        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(
            files
                .iter()
                .all(|p| p.extension().is_some_and(|e| e == "eml"))
        );
        let body = std::fs::read_to_string(&files[0]).unwrap();
        assert!(body.contains("Subject: Confirm Your Account"));
        assert!(body.contains("http://127.0.0.1:5003/confirm/tok"));
        let id = sent.provider_message_id.unwrap();
        assert!(
            std::fs::read_to_string(&files[0]).unwrap().contains(&id)
                || std::fs::read_to_string(&files[1]).unwrap().contains(&id)
        );
    }

    #[tokio::test]
    async fn unwritable_directory_is_a_transient_error() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let mailer = FileMailer::new(
            blocker.join("sub"),
            Sender::parse("no-reply@example.com").unwrap(),
        );
        let msg = Message {
            to: EmailAddress::parse("someone@example.com").unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: None,
        };
        assert!(mailer.send(&msg).await.unwrap_err().is_transient());
    }
}
