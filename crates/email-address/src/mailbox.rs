//! Mailboxes: which addresses deliver to the same inbox, so that limits on how much email one
//! person receives cannot be dodged with aliases.

use std::fmt;

use crate::{EmailAddress, EmailError};

/// Domains whose local parts ignore dots (`v.ictim` and `victim` are one inbox). `googlemail.com`
/// is the same service as `gmail.com`, and is mapped to it.
const DOTLESS_DOMAINS: &[&str] = &["gmail.com", "googlemail.com"];

/// The canonical form of the inbox an address delivers to: the address in lower case, without
/// a `+tag` in its local part, and for Gmail (`gmail.com`, `googlemail.com`) without dots in the
/// local part and on `gmail.com`. `Victim+1@Gmail.com`, `v.ictim@googlemail.com` and
/// `victim@gmail.com` all have the key `victim@gmail.com`.
///
/// It is not an account's identity (two aliases are two accounts, see [`EmailAddress::key`]):
/// it is what the limits on how much email one inbox receives (the resend cooldown and daily
/// cap, the suppression list) are counted on. The key is personal data: [`fmt::Display`] and
/// [`fmt::Debug`] show it [masked](Self::masked); [`Self::as_str`] gives it in full, for
/// storage.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxKey(String);

impl MailboxKey {
    /// The mailbox key of a stored or typed address (see [`EmailAddress::mailbox_key`]). A key
    /// parses to itself.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        Ok(EmailAddress::parse(input)?.mailbox_key())
    }

    /// The key in full, for storage and lookups. Not for logs: use [`Self::masked`].
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs and operator tables: first character of the local part, then
    /// `***@domain`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or(("", &self.0));
        let first = local.chars().next().unwrap_or('*');
        format!("{first}***@{domain}")
    }
}

/// Masked: a key never lands in a log in full through `{}`.
impl fmt::Display for MailboxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masked, like [`fmt::Display`].
impl fmt::Debug for MailboxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MailboxKey").field(&self.masked()).finish()
    }
}

impl EmailAddress {
    /// The canonical key of the inbox this address delivers to (see [`MailboxKey`]): lower case,
    /// `+tag` dropped from the local part (unless the local part starts with `+`; a dot left at
    /// the end goes with it), and for
    /// `gmail.com` and `googlemail.com` the dots dropped from the local part and the domain
    /// `gmail.com`.
    pub fn mailbox_key(&self) -> MailboxKey {
        let local = self.local_part().to_ascii_lowercase();
        let local = match local.find('+') {
            // Without a dot the tag leaves behind (`a.+x` is `a`), so the key is an address.
            Some(plus) if plus > 0 => local[..plus].trim_end_matches('.'),
            _ => local.as_str(),
        };
        let domain = self.domain();
        let key = if DOTLESS_DOMAINS.contains(&domain) {
            let mut key: String = local.chars().filter(|&c| c != '.').collect();
            key.push_str("@gmail.com");
            key
        } else {
            format!("{local}@{domain}")
        };
        MailboxKey(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        EmailAddress::parse(s)
            .unwrap()
            .mailbox_key()
            .as_str()
            .to_owned()
    }

    #[test]
    fn aliases_of_one_gmail_inbox_share_a_key() {
        for alias in [
            "victim@gmail.com",
            "Victim@Gmail.com",
            "victim+1@gmail.com",
            "victim+2@gmail.com",
            "v.ictim@gmail.com",
            "V.I.C.T.I.M+news+more@GoogleMail.com",
            "vic.tim@googlemail.com",
        ] {
            assert_eq!(key(alias), "victim@gmail.com", "{alias}");
        }
        assert_ne!(key("victim2@gmail.com"), key("victim@gmail.com"));
    }

    #[test]
    fn other_domains_drop_the_tag_and_case_but_keep_dots() {
        assert_eq!(key("First.Last+shop@Example.COM"), "first.last@example.com");
        assert_ne!(key("first.last@example.com"), key("firstlast@example.com"));
        assert_eq!(key("a+b+c@example.org"), "a@example.org");
        assert_eq!(key("a.b.+c@example.org"), "a.b@example.org");
        // Only a Gmail domain itself, not one that ends like it.
        assert_eq!(key("a.b@notgmail.com"), "a.b@notgmail.com");
        assert_eq!(key("a.b@mail.gmail.com"), "a.b@mail.gmail.com");
    }

    #[test]
    fn a_local_part_that_starts_with_plus_is_kept() {
        assert_eq!(key("+tag@example.com"), "+tag@example.com");
        assert_eq!(key("+t.ag@gmail.com"), "+tag@gmail.com");
    }

    #[test]
    fn display_and_debug_are_masked() {
        let k = EmailAddress::parse("secret.person+x@gmail.com")
            .unwrap()
            .mailbox_key();
        assert_eq!(k.as_str(), "secretperson@gmail.com");
        assert_eq!(k.masked(), "s***@gmail.com");
        assert_eq!(k.to_string(), "s***@gmail.com");
        assert!(!format!("{k:?}").contains("secret"));
    }

    #[test]
    fn a_key_parses_to_itself() {
        let k = EmailAddress::parse("V.ictim+1@googlemail.com")
            .unwrap()
            .mailbox_key();
        assert_eq!(MailboxKey::parse(k.as_str()), Ok(k));
        assert!(MailboxKey::parse("not an address").is_err());
    }
}
