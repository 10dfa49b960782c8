//! DKIM signing (RFC 6376), `rsa-sha256` and `ed25519-sha256` (RFC 8463), with relaxed/relaxed
//! canonicalization, over the bytes [`crate::mime`] writes.
//!
//! Why not a DKIM crate: lettre's `dkim` feature signs RSA with the `rsa` crate, whose
//! non-constant-time private-key operations are RUSTSEC-2023-0071 (so `cargo deny` refuses it),
//! and Stalwart's `mail-auth` offers `ring` only up to 0.13 (its maintained line signs with
//! `aws-lc-rs` or the same `rsa` crate), where it still adds about 25 crates (a DNS resolver,
//! a cache, a MIME parser) that a signer never uses. Signing needs only the canonicalization
//! below and two signature primitives, which come from `ring` (already here for TLS). CI
//! verifies what this writes with an independent implementation (Python's `dkimpy`), for both
//! key types.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;

/// The header fields signed, in this order, each as many times as the message has it.
const SIGNED: [&str; 8] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// Listed once more than they occur ("oversigned"), so that a relay or an attacker cannot add a
/// second one without breaking the signature.
const OVERSIGNED: [&str; 3] = ["from", "to", "subject"];

/// Folded lines of the signature header stay within this many characters where they can.
const LINE: usize = 76;

/// A DKIM setting or key that cannot be used. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// The signing domain is not a domain name.
    #[error("DKIM_DOMAIN {0:?} is not a domain name")]
    Domain(String),
    /// The selector is not made of DNS labels.
    #[error("DKIM_SELECTOR {0:?} is not a selector (DNS labels: letters, digits, `-`, `_`)")]
    Selector(String),
    /// The key file cannot be read, or holds no usable RSA (2048 to 4096 bits) or Ed25519 key.
    #[error("DKIM_PRIVATE_KEY_FILE {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing domain is neither the From domain nor a parent of it.
    #[error(
        "DKIM_DOMAIN {dkim_domain} does not cover the From domain {from_domain}: receivers check \
         (DMARC) that the signing domain is the From address's domain or a parent of it"
    )]
    Alignment {
        /// The From address's domain.
        from_domain: String,
        /// The signing domain.
        dkim_domain: String,
    },
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signs messages for one domain and selector with one private key.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
}

impl fmt::Debug for DkimSigner {
    /// The domain, the selector and the algorithm; never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a DNS name: dot-separated labels of 1 to 63 letters, digits, `-` or `_`
/// (selectors use `_` at times), not starting or ending with `-`, 253 characters at most.
fn dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl DkimSigner {
    /// A signer for `domain` (the `d=` tag) and `selector` (`s=`) with the private key in a PEM
    /// file: RSA (2048 to 4096 bits; `PRIVATE KEY` or `RSA PRIVATE KEY`) or Ed25519
    /// (`PRIVATE KEY`), as `openssl genpkey` writes them.
    pub fn from_pem_file(domain: &str, selector: &str, path: &Path) -> Result<Self, DkimError> {
        let key_error = |reason: String| DkimError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
        let key = Self::key_from_pem(&pem).map_err(key_error)?;
        Self::new(domain, selector, key)
    }

    /// As [`Self::from_pem_file`], from the PEM text itself.
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<Self, DkimError> {
        let key = Self::key_from_pem(pem).map_err(|reason| DkimError::KeyFile {
            path: "(inline)".to_owned(),
            reason,
        })?;
        Self::new(domain, selector, key)
    }

    fn new(domain: &str, selector: &str, key: Key) -> Result<Self, DkimError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !dns_name(&domain) || !domain.contains('.') {
            return Err(DkimError::Domain(domain));
        }
        let selector = selector.trim().to_ascii_lowercase();
        if !dns_name(&selector) {
            return Err(DkimError::Selector(selector));
        }
        Ok(Self {
            domain,
            selector,
            key,
        })
    }

    fn key_from_pem(pem: &[u8]) -> Result<Key, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no private key in PEM form ({e})"))?;
        let rsa_size = "an RSA key must have 2048 to 4096 bits";
        match der {
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der())
                .map(Key::Rsa)
                .map_err(|e| format!("not a usable RSA key: {e} ({rsa_size})")),
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                    return Ok(Key::Ed25519(key));
                }
                RsaKeyPair::from_pkcs8(der).map(Key::Rsa).map_err(|e| {
                    match e.to_string().as_str() {
                        "WrongAlgorithm" => {
                            "neither an RSA nor an Ed25519 key: DKIM signs with RSA or Ed25519 only"
                                .to_owned()
                        }
                        _ => format!("not a usable RSA key: {e} ({rsa_size})"),
                    }
                })
            }
            _ => Err("an EC (SEC1) key: DKIM signs with RSA or Ed25519 only".to_owned()),
        }
    }

    /// `rsa-sha256` or `ed25519-sha256` (the `a=` tag).
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The signing domain (`d=`), lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`), lower case.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// Checks that this signer's domain aligns with a From address's domain (DMARC, relaxed
    /// alignment): the same domain, or a parent of it.
    pub(crate) fn check_alignment(&self, from_domain: &str) -> Result<(), DkimError> {
        let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
        let aligned = from == self.domain
            || from
                .strip_suffix(&self.domain)
                .is_some_and(|head| head.ends_with('.'));
        if aligned {
            Ok(())
        } else {
            Err(DkimError::Alignment {
                from_domain: from,
                dkim_domain: self.domain.clone(),
            })
        }
    }

    /// The DNS TXT record receivers look up: its name
    /// (`<selector>._domainkey.<domain>`) and its value (`v=DKIM1; k=…; p=…`).
    pub fn dns_record(&self) -> (String, String) {
        let (k, public) = match &self.key {
            Key::Rsa(key) => ("rsa", rsa_subject_public_key_info(key.public().as_ref())),
            Key::Ed25519(key) => ("ed25519", key.public_key().as_ref().to_vec()),
        };
        (
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!("v=DKIM1; k={k}; p={}", BASE64.encode(public)),
        )
    }

    /// The `DKIM-Signature` header field (with its final CRLF) for an RFC 5322 message with
    /// CRLF line ends, signed at `timestamp` (seconds since the Unix epoch, the `t=` tag).
    pub fn sign(&self, message: &[u8], timestamp: i64) -> Result<String, String> {
        let (header, body) = split_message(message);
        let fields = header_fields(header);
        let names = signed_names(&fields);
        let mut hashed = Vec::with_capacity(header.len() + 512);
        // RFC 6376 5.4.2: each listed name takes the last instance not yet taken, bottom up;
        // a name with no instance left (oversigned) contributes nothing.
        let mut taken = vec![false; fields.len()];
        for name in &names {
            let found = fields
                .iter()
                .enumerate()
                .rev()
                .find(|(i, (field_name, _))| !taken[*i] && field_name.eq_ignore_ascii_case(name));
            if let Some((i, (field_name, value))) = found {
                taken[i] = true;
                relaxed_header(&mut hashed, field_name, value);
                hashed.extend_from_slice(b"\r\n");
            }
        }
        let body_hash = ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body));
        let unsigned = self.signature_field(timestamp, &names, &BASE64.encode(body_hash));
        let (name, value) = unsigned.split_once(':').unwrap_or(("DKIM-Signature", ""));
        relaxed_header(&mut hashed, name, value.as_bytes());
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    &hashed,
                    &mut signature,
                )
                .map_err(|_| "the RSA signature failed".to_owned())?;
                signature
            }
            Key::Ed25519(key) => {
                // RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalized data.
                let digest = ring::digest::digest(&ring::digest::SHA256, &hashed);
                key.sign(digest.as_ref()).as_ref().to_vec()
            }
        };
        let mut field = unsigned;
        fold_base64(&mut field, &BASE64.encode(signature));
        field.push_str("\r\n");
        Ok(field)
    }

    /// The `DKIM-Signature` field up to its empty `b=` tag, folded (no final CRLF).
    fn signature_field(&self, timestamp: i64, names: &[&str], body_hash: &str) -> String {
        let tags = [
            "v=1".to_owned(),
            format!("a={}", self.algorithm()),
            "c=relaxed/relaxed".to_owned(),
            format!("d={}", self.domain),
            format!("s={}", self.selector),
            format!("t={timestamp}"),
        ];
        let mut field = String::from("DKIM-Signature:");
        let mut line = field.len();
        let put = |field: &mut String, atom: &str, line: &mut usize| {
            if *line + 1 + atom.len() > LINE {
                field.push_str("\r\n\t");
                *line = 1;
            } else {
                field.push(' ');
                *line += 1;
            }
            field.push_str(atom);
            *line += atom.len();
        };
        for tag in &tags {
            put(&mut field, &format!("{tag};"), &mut line);
        }
        // h= may fold after any colon (RFC 6376 3.5: FWS around the colons).
        let last = names.len().saturating_sub(1);
        for (i, name) in names.iter().enumerate() {
            let sep = if i == last { ";" } else { ":" };
            if i == 0 {
                put(&mut field, &format!("h={name}{sep}"), &mut line);
                continue;
            }
            if line + name.len() + 1 > LINE {
                field.push_str("\r\n\t");
                line = 1;
            }
            field.push_str(name);
            field.push_str(sep);
            line += name.len() + 1;
        }
        put(&mut field, &format!("bh={body_hash};"), &mut line);
        put(&mut field, "b=", &mut line);
        field
    }
}

/// The header names for `h=`: each of [`SIGNED`] as often as the message has it, the
/// [`OVERSIGNED`] ones once more.
fn signed_names<'a>(fields: &[(&str, &[u8])]) -> Vec<&'a str> {
    let mut names = Vec::new();
    for name in SIGNED {
        let count = fields
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .count();
        let extra = usize::from(OVERSIGNED.contains(&name));
        names.extend(std::iter::repeat_n(name, count + extra));
    }
    names
}

/// The header block (with the CRLF ending its last field) and the body.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &[]),
    }
}

/// The header fields as (name, raw value with its folding), in order.
fn header_fields(header: &[u8]) -> Vec<(&str, &[u8])> {
    let mut fields: Vec<(&str, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < header.len() {
        let Some(end) = header[i..].windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let next = i + end + 2;
        let continues = header.get(next).is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continues {
            let field = &header[start..next - 2];
            if let Some(colon) = field.iter().position(|b| *b == b':')
                && let Ok(name) = std::str::from_utf8(&field[..colon])
            {
                fields.push((name.trim_end_matches([' ', '\t']), &field[colon + 1..]));
            }
            start = next;
        }
        i = next;
    }
    fields
}

/// RFC 6376 3.4.2, without the final CRLF: the name in lower case, the value unfolded, runs of
/// whitespace as one space, none at either end.
fn relaxed_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend(name.trim().bytes().map(|b| b.to_ascii_lowercase()));
    out.push(b':');
    let mut space = false;
    let mut wrote = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && wrote {
                    out.push(b' ');
                }
                space = false;
                wrote = true;
                out.push(b);
            }
        }
    }
}

/// RFC 6376 3.4.4: runs of whitespace as one space, none at a line's end, no empty lines at the
/// end, and a final CRLF unless the body is empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut empty_lines = 0;
    let mut lines = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break; // what follows the final CRLF
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut canon = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    canon.push(b' ');
                }
                space = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            empty_lines += 1;
            continue;
        }
        for _ in 0..empty_lines {
            out.extend_from_slice(b"\r\n");
        }
        empty_lines = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Appends a base64 value in folded lines (whitespace inside `b=` is ignored by verifiers).
fn fold_base64(field: &mut String, value: &str) {
    let last_line = field.rsplit("\r\n").next().map_or(0, str::len);
    let mut room = LINE.saturating_sub(last_line).max(8);
    let mut rest = value;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(room.min(rest.len()));
        field.push_str(chunk);
        rest = tail;
        if !rest.is_empty() {
            field.push_str("\r\n\t");
            room = LINE - 1;
        }
    }
}

/// A DER length.
fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// An RSA public key (PKCS#1 `RSAPublicKey`, DER) as the `SubjectPublicKeyInfo` DKIM records
/// carry in `p=` (what `openssl pkey -pubout` writes).
fn rsa_subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    der_length(&mut bit_string, rsa_public_key.len() + 1);
    bit_string.push(0); // no unused bits
    bit_string.extend_from_slice(rsa_public_key);
    let mut spki = vec![0x30];
    der_length(&mut spki, ALGORITHM.len() + bit_string.len());
    spki.extend_from_slice(&ALGORITHM);
    spki.extend_from_slice(&bit_string);
    spki
}

#[cfg(test)]
mod tests;
