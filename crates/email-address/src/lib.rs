#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::fmt;

mod mailbox;

pub use mailbox::MailboxKey;

/// Longest address SMTP can carry (RFC 5321 §4.5.3.1.3: a 256-octet path minus the brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Why a string is not an address we accept. The messages are safe to show to the visitor:
/// they never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but spaces.
    #[error("Please enter an email address.")]
    Empty,
    /// Longer than [`MAX_ADDRESS_LEN`] once its domain is encoded.
    #[error("That email address is too long (at most 254 characters).")]
    TooLong,
    /// A local part longer than [`MAX_LOCAL_LEN`].
    #[error("The part before the @ is too long (at most 64 characters).")]
    LocalPartTooLong,
    /// A line break or another control character (header injection).
    #[error("The email address contains a line break or another control character.")]
    ControlCharacter,
    /// A display name, angle brackets or quotes: only the bare address is accepted.
    #[error(
        "Please enter just the address (like name@example.com), without a name or angle brackets."
    )]
    DisplayName,
    /// No `@`, or more than one.
    #[error("The email address must contain exactly one @.")]
    BadAt,
    /// A local part that is not a dot-atom of ASCII characters.
    #[error("The part before the @ contains characters that are not allowed.")]
    InvalidLocalPart,
    /// A domain that is not a valid host name (after IDNA encoding).
    #[error("The domain after the @ is not valid.")]
    InvalidDomain,
}

/// A syntactically valid email address.
///
/// The local part is kept exactly as typed (some mail systems treat it case-sensitively, so we
/// send to what the visitor typed); the domain is lower-cased and IDNA-encoded (punycode), so
/// `Ünïcode@Bücher.Example` becomes `Ünïcode@xn--bcher-kva.example`... except that non-ASCII
/// local parts are refused, since few providers accept SMTPUTF8. [`EmailAddress::key`] is the
/// case-insensitive identity: `Case@Example.com` and `case@example.com` are one account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    /// `local@domain`, local as typed, domain normalised.
    address: String,
    /// Byte offset of the `@` in `address`.
    at: usize,
}

impl EmailAddress {
    /// Parses and normalises an address typed by a person. This is the only way to get one.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        // Reject before doing any work on absurd input; IDNA can only make a domain longer
        // than its Unicode form, except for case folding, so this is a safe early bound.
        if input.len() > MAX_ADDRESS_LEN * 4 {
            return Err(EmailError::TooLong);
        }
        if input.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        if input.contains(['<', '>']) || input.contains('"') {
            return Err(EmailError::DisplayName);
        }
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::BadAt);
        };
        if local.len() > MAX_LOCAL_LEN {
            return Err(EmailError::LocalPartTooLong);
        }
        if !is_dot_atom(local) {
            return Err(EmailError::InvalidLocalPart);
        }
        let domain = normalise_domain(domain)?;
        let mut address = String::with_capacity(local.len() + 1 + domain.len());
        address.push_str(local);
        address.push('@');
        address.push_str(&domain);
        if address.len() > MAX_ADDRESS_LEN {
            return Err(EmailError::TooLong);
        }
        Ok(Self {
            address,
            at: local.len(),
        })
    }

    /// The address to send to: local part as typed, domain normalised.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The address to send to, as an owned string (no copy).
    pub fn into_string(self) -> String {
        self.address
    }

    /// The local part, as typed.
    pub fn local_part(&self) -> &str {
        &self.address[..self.at]
    }

    /// The domain, lower-case ASCII (IDNA-encoded).
    pub fn domain(&self) -> &str {
        &self.address[self.at + 1..]
    }

    /// The case-insensitive identity of the account: the whole address in lower case.
    pub fn key(&self) -> String {
        self.address.to_ascii_lowercase()
    }

    /// A form safe for logs: first character of the local part, then `***@domain`.
    pub fn masked(&self) -> String {
        let first = self.local_part().chars().next().unwrap_or('*');
        format!("{first}***@{}", self.domain())
    }

    /// `text` with every occurrence of this address, in any ASCII letter case, replaced by its
    /// [masked](Self::masked) form: for provider errors and other texts that quote the
    /// recipient before they are logged, stored or shown.
    pub fn mask_in(&self, text: &str) -> String {
        // ASCII lower-casing keeps byte offsets, so a match found in the lowered text is at the
        // same place in the original.
        let needle = self.address.to_ascii_lowercase();
        let haystack = text.to_ascii_lowercase();
        let masked = self.masked();
        let mut out = String::with_capacity(text.len());
        let mut rest = 0;
        for (start, _) in haystack.match_indices(&needle) {
            if start < rest {
                continue;
            }
            out.push_str(&text[rest..start]);
            out.push_str(&masked);
            rest = start + needle.len();
        }
        out.push_str(&text[rest..]);
        out
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

/// Debug output is masked so that an address never lands in a log through `{:?}`.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EmailAddress").field(&self.masked()).finish()
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// RFC 5322 `dot-atom-text` in ASCII: atoms of `atext` separated by single dots.
fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
}

/// Lower-cases and IDNA-encodes a domain, then checks it is a plausible public host name.
fn normalise_domain(domain: &str) -> Result<String, EmailError> {
    if domain.is_empty() || domain.starts_with('[') {
        // Address literals (`user@[192.0.2.1]`) are not accepted for sign-ups.
        return Err(EmailError::InvalidDomain);
    }
    let mut ascii = if is_plain_ascii_domain(domain) {
        // What IDNA would return for it (checked against it in the tests), without its cost:
        // most addresses, and every stored one read back, take this path.
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain).map_err(|_| EmailError::InvalidDomain)?
    };
    if ascii.ends_with('.') {
        ascii.pop();
    }
    if !ascii.contains('.') {
        return Err(EmailError::InvalidDomain);
    }
    let mut labels = ascii.split('.');
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !labels.clone().all(label_ok) {
        return Err(EmailError::InvalidDomain);
    }
    // A top-level domain is never all digits; this refuses bare IPv4 addresses.
    if labels
        .next_back()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(EmailError::InvalidDomain);
    }
    Ok(ascii)
}

/// A domain IDNA leaves as it is but for lower-casing: ASCII letters, digits, hyphens and dots,
/// with no label in punycode (`xn--`, which IDNA decodes to check).
fn is_plain_ascii_domain(domain: &str) -> bool {
    domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !domain
            .split('.')
            .any(|label| label.len() >= 4 && label[..4].eq_ignore_ascii_case("xn--"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn accepts_ordinary_addresses_and_trims() {
        let a = ok("  michael@realpython.com \t");
        assert_eq!(a.as_str(), "michael@realpython.com");
        assert_eq!(a.local_part(), "michael");
        assert_eq!(a.domain(), "realpython.com");
        assert_eq!(
            ok("a.b+tag!x@sub.example.co.uk").as_str(),
            "a.b+tag!x@sub.example.co.uk"
        );
    }

    #[test]
    fn keeps_local_case_lowercases_domain_and_keys_case_insensitively() {
        let a = ok("Mixed.Case+tag@Example.ORG");
        assert_eq!(a.as_str(), "Mixed.Case+tag@example.org");
        assert_eq!(a.key(), "mixed.case+tag@example.org");
        assert_eq!(ok("Case@Example.com").key(), ok("case@example.com").key());
        assert_ne!(ok("Case@Example.com"), ok("case@example.com"));
    }

    #[test]
    fn idna_encodes_the_domain() {
        let a = ok("user@Bücher.Example");
        assert_eq!(a.domain(), "xn--bcher-kva.example");
        assert_eq!(ok("user@xn--bcher-kva.example"), a);
    }

    #[test]
    fn rejects_bad_shapes_with_specific_errors() {
        use EmailError::*;
        let cases: &[(&str, EmailError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("plainaddress", BadAt),
            ("a@b@example.com", BadAt),
            ("@example.com", InvalidLocalPart),
            ("user@", InvalidDomain),
            (".user@example.com", InvalidLocalPart),
            ("user.@example.com", InvalidLocalPart),
            ("us..er@example.com", InvalidLocalPart),
            ("us er@example.com", InvalidLocalPart),
            ("usér@example.com", InvalidLocalPart),
            ("user@localhost", InvalidDomain),
            ("user@-example.com", InvalidDomain),
            ("user@exa_mple.com", InvalidDomain),
            ("user@example..com", InvalidDomain),
            ("user@[192.0.2.1]", InvalidDomain),
            ("user@192.0.2.1", InvalidDomain),
            ("Joe <joe@example.com>", DisplayName),
            ("<joe@example.com>", DisplayName),
            ("\"joe\"@example.com", DisplayName),
            (
                "joe@example.com\r\nBcc: victim@example.com",
                ControlCharacter,
            ),
            ("joe\n@example.com", ControlCharacter),
            ("jo\u{0}e@example.com", ControlCharacter),
            ("jo\u{85}e@example.com", ControlCharacter),
        ];
        for (input, want) in cases {
            assert_eq!(EmailAddress::parse(input), Err(*want), "input {input:?}");
        }
    }

    #[test]
    fn enforces_rfc_5321_lengths() {
        let local64 = "a".repeat(64);
        assert!(EmailAddress::parse(&format!("{local64}@example.com")).is_ok());
        assert_eq!(
            EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))),
            Err(EmailError::LocalPartTooLong)
        );
        // 254 octets exactly: 64 + 1 + 189.
        let domain189 = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        assert_eq!(domain189.len(), 189);
        let max = format!("{local64}@{domain189}");
        assert_eq!(max.len(), 254);
        assert!(EmailAddress::parse(&max).is_ok());
        let over = format!("{local64}@e.{domain189}");
        assert_eq!(EmailAddress::parse(&over), Err(EmailError::TooLong));
        assert_eq!(
            EmailAddress::parse(&"x".repeat(100_000)),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn error_messages_never_echo_input() {
        let err = EmailAddress::parse("<script>@example.com").unwrap_err();
        assert!(!err.to_string().contains("script"));
    }

    #[test]
    fn debug_and_masked_hide_the_address() {
        let a = ok("secret.person@example.com");
        assert_eq!(a.masked(), "s***@example.com");
        assert!(!format!("{a:?}").contains("secret.person"));
    }

    #[test]
    fn quoted_addresses_are_masked_in_any_case() {
        let email = ok("Jane.Doe@Example.com");
        assert_eq!(
            email.mask_in("550 5.1.1 <jane.doe@example.com>: unknown; JANE.DOE@EXAMPLE.COM"),
            "550 5.1.1 <J***@example.com>: unknown; J***@example.com"
        );
        assert_eq!(email.mask_in("451 try later"), "451 try later");
        assert_eq!(email.mask_in(""), "");
        // Multi-byte text around the address keeps its characters.
        assert_eq!(
            email.mask_in("é jane.doe@example.com ü"),
            "é J***@example.com ü"
        );
    }

    proptest::proptest! {
        /// The fast path for plain ASCII domains gives exactly what IDNA gives.
        #[test]
        fn plain_ascii_domains_normalise_as_idna_does(domain in "[a-zA-Z0-9.-]{0,70}") {
            if is_plain_ascii_domain(&domain) {
                let idna = idna::domain_to_ascii(&domain);
                proptest::prop_assert_eq!(idna.ok(), Some(domain.to_ascii_lowercase()));
            }
        }
    }

    #[test]
    fn punycode_and_non_ascii_domains_go_through_idna() {
        assert!(is_plain_ascii_domain("Mail.Example.COM"));
        assert!(!is_plain_ascii_domain("xn--bcher-kva.example"));
        assert!(!is_plain_ascii_domain("a.XN--bcher-kva.example"));
        assert!(!is_plain_ascii_domain("bücher.example"));
        assert!(!is_plain_ascii_domain("under_score.example"));
        // An invalid punycode label is still refused.
        assert_eq!(
            EmailAddress::parse("a@xn--a.example"),
            Err(EmailError::InvalidDomain)
        );
    }
}
