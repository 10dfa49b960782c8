//! The keys here were made for these tests with `openssl genpkey` and sign nothing else.

use super::*;

const RSA_PKCS8: &[u8] = include_bytes!("rsa2048.pem");
const RSA_PKCS1: &[u8] = include_bytes!("rsa2048-pkcs1.pem");
const ED25519: &[u8] = include_bytes!("ed25519.pem");
const EC: &[u8] = include_bytes!("ec.pem");
const RSA_1024: &[u8] = include_bytes!("rsa1024.pem");

/// `openssl pkey -in rsa2048.pem -pubout -outform DER | base64 -w0`
const RSA_SPKI: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqR+GoMdyS7wsyM3vqukmCJiLzviNKIwCKJnws02JO5aeqiY+iq4lwFZA/yy1Z09WrA/MH0C8UUpPW2U1JpLBsFUl2NhgPjU3satHxAqXm5lKoxl4vuQd2tWRrRJfFI/kCTSczFFRPCS2uN+1e/HQoXMwMp/ovX2n+Uj87orW/kyGpP+iBPlj892YpB93qyzez1jmQQ379ukT0bCCtgnFR4lsaPv/aCdpw9UMsdfTgnL/zUD7i4NjzykADGTDgNu9vLTKPPfXCDTZFq2d3RuLMaycnlUJh9AUYom7JXLeKq0lD0ZPoV5vYHcKXmpDfQ9ewv8mN0tmkUYXJyvSAp5U1QIDAQAB";
/// `openssl pkey -in ed25519.pem -pubout -outform DER | tail -c 32 | base64`
const ED25519_PUBLIC: &str = "RQvcXAcPnGV9NCutrn0Od8Y3GYBNqWgoKpWT1Lr6mlA=";

const MESSAGE: &[u8] = b"From: Joe <joe@example.com>\r\n\
To: Suzie <suzie@example.net>\r\n\
Subject: Is dinner\r\n\
\tready?\r\n\
Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n\
Message-ID: <20030712040037.46341.5F8J@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 7bit\r\n\
X-Not-Signed: yes\r\n\
\r\n\
Hi.\r\n\
\r\n\
We lost the game.  Are you hungry yet?\r\n";

fn signer(pem: &[u8]) -> DkimSigner {
    DkimSigner::from_pem("Example.COM.", "Sel-2026", pem).unwrap()
}

fn canon_header(name: &str, value: &[u8]) -> String {
    let mut out = Vec::new();
    relaxed_header(&mut out, name, value);
    String::from_utf8(out).unwrap()
}

/// RFC 6376 3.4.5's example, and values computed by dkimpy's `Relaxed` canonicalization.
#[test]
fn relaxed_canonicalization_matches_the_rfc_and_dkimpy() {
    let fields = header_fields(b"A: X\r\nB : Y\t\r\n\tZ  \r\n");
    let canon: Vec<String> = fields.iter().map(|(n, v)| canon_header(n, v)).collect();
    assert_eq!(canon, ["a:X", "b:Y Z"]);
    assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");

    assert_eq!(
        canon_header("FROM ", b"  Joe <joe@example.com>"),
        "from:Joe <joe@example.com>"
    );
    assert_eq!(
        canon_header("Subject", b" Is  dinner\r\n\tready? \t"),
        "subject:Is dinner ready?"
    );
    let body = relaxed_body(b"Hello  \t world \r\n\r\n  indented\tline\t\r\nlast\r\n\r\n\r\n");
    assert_eq!(body, b"Hello world\r\n\r\n indented line\r\nlast\r\n");
    let hash = ring::digest::digest(&ring::digest::SHA256, &body);
    assert_eq!(
        BASE64.encode(hash),
        "9uS1GxMCxwgOVfVL2lZH1NyU5p8uu0ILxeir5hZkXGM="
    );
    assert_eq!(relaxed_body(b""), b"");
    assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    assert_eq!(relaxed_body(b"no final line end"), b"no final line end\r\n");
}

#[test]
fn reads_rsa_in_both_pem_forms_and_ed25519() {
    for (pem, algorithm) in [
        (RSA_PKCS8, "rsa-sha256"),
        (RSA_PKCS1, "rsa-sha256"),
        (ED25519, "ed25519-sha256"),
    ] {
        let signer = signer(pem);
        assert_eq!(signer.algorithm(), algorithm);
        assert_eq!(signer.domain(), "example.com");
        assert_eq!(signer.selector(), "sel-2026");
    }
}

#[test]
fn the_dns_record_carries_the_public_key_as_openssl_writes_it() {
    assert_eq!(
        signer(RSA_PKCS8).dns_record(),
        (
            "sel-2026._domainkey.example.com".to_owned(),
            format!("v=DKIM1; k=rsa; p={RSA_SPKI}")
        )
    );
    assert_eq!(
        signer(RSA_PKCS1).dns_record(),
        signer(RSA_PKCS8).dns_record()
    );
    assert_eq!(
        signer(ED25519).dns_record().1,
        format!("v=DKIM1; k=ed25519; p={ED25519_PUBLIC}")
    );
}

#[test]
fn refuses_keys_that_cannot_sign_dkim_with_a_reason() {
    let reason = |pem: &[u8]| match DkimSigner::from_pem("example.com", "s", pem) {
        Err(DkimError::KeyFile { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(reason(EC).contains("RSA or Ed25519"), "{}", reason(EC));
    assert!(reason(RSA_1024).contains("2048"), "{}", reason(RSA_1024));
    assert!(reason(b"not a key").contains("no private key"));
    // The error never carries the key.
    let err = DkimSigner::from_pem("example.com", "s", RSA_1024).unwrap_err();
    assert!(!err.to_string().contains("MII"), "{err}");

    let missing = DkimSigner::from_pem_file("example.com", "s", Path::new("/nonexistent/key.pem"))
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("DKIM_PRIVATE_KEY_FILE /nonexistent/key.pem: "),
        "{missing}"
    );
}

#[test]
fn refuses_bad_domains_and_selectors() {
    for domain in ["", "localhost", "exa mple.com", "-a.example.com", "a..com"] {
        assert!(
            matches!(
                DkimSigner::from_pem(domain, "s", ED25519),
                Err(DkimError::Domain(_))
            ),
            "{domain:?}"
        );
    }
    for selector in ["", "a b", "a;b", "x=1"] {
        assert!(
            matches!(
                DkimSigner::from_pem("example.com", selector, ED25519),
                Err(DkimError::Selector(_))
            ),
            "{selector:?}"
        );
    }
    assert!(DkimSigner::from_pem("example.com", "2026_01.mail", ED25519).is_ok());
}

#[test]
fn alignment_allows_the_domain_and_its_subdomains_only() {
    let signer = signer(ED25519);
    assert!(signer.check_alignment("example.com").is_ok());
    assert!(signer.check_alignment("Mail.Example.com").is_ok());
    assert!(matches!(
        signer.check_alignment("badexample.com"),
        Err(DkimError::Alignment { .. })
    ));
    assert!(signer.check_alignment("example.org").is_err());
}

#[test]
fn debug_shows_no_key() {
    let shown = format!("{:?}", signer(RSA_PKCS8));
    assert!(
        shown.contains("rsa-sha256") && shown.contains("sel-2026"),
        "{shown}"
    );
    assert!(!shown.contains("MII") && !shown.contains("key:"), "{shown}");
}

/// Splits a signature field into its tags (unfolded, whitespace removed).
fn tags(field: &str) -> Vec<(String, String)> {
    let value = field.split_once(':').unwrap().1;
    let unfolded: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    unfolded
        .split(';')
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (k, v) = t.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn tag(field: &str, name: &str) -> String {
    tags(field)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name}= in {field}"))
}

#[test]
fn signs_the_listed_headers_oversigning_from_to_and_subject() {
    let field = signer(RSA_PKCS8).sign(MESSAGE, 1_700_000_000).unwrap();
    assert!(field.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"));
    assert!(field.ends_with("\r\n"));
    assert_eq!(tag(&field, "d"), "example.com");
    assert_eq!(tag(&field, "s"), "sel-2026");
    assert_eq!(tag(&field, "t"), "1700000000");
    assert_eq!(
        tag(&field, "h"),
        "from:from:to:to:subject:subject:date:message-id:mime-version:content-type:content-transfer-encoding"
    );
    // The body hash of the relaxed body (as dkimpy computes it for this body).
    let body = relaxed_body(split_message(MESSAGE).1);
    assert_eq!(
        tag(&field, "bh"),
        BASE64.encode(ring::digest::digest(&ring::digest::SHA256, &body))
    );
    // RSA-2048: 256 bytes of signature.
    assert_eq!(BASE64.decode(tag(&field, "b")).unwrap().len(), 256);
    for line in field.trim_end().split("\r\n") {
        assert!(line.len() <= 78, "{line:?}");
    }
    for line in field.trim_end().split("\r\n").skip(1) {
        assert!(line.starts_with('\t'), "folded lines continue: {line:?}");
    }
}

/// Verifies `field` over `message` the way a receiver does, with ring's verifiers and the
/// public key from the DNS record: the canonical headers named in h=, then the signature field
/// with its b= emptied.
fn verify(signer: &DkimSigner, message: &[u8], field: &str) -> bool {
    let (header, body) = split_message(message);
    let bh = BASE64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        &relaxed_body(body),
    ));
    if tag(field, "bh") != bh {
        return false;
    }
    let fields = header_fields(header);
    let mut taken = vec![false; fields.len()];
    let mut hashed = Vec::new();
    for name in tag(field, "h").split(':') {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|i| !taken[*i] && fields[*i].0.eq_ignore_ascii_case(name))
        {
            taken[i] = true;
            relaxed_header(&mut hashed, fields[i].0, fields[i].1);
            hashed.extend_from_slice(b"\r\n");
        }
    }
    // The b= tag: the one preceded by whitespace (base64 values may end in `b=`).
    let at = field
        .match_indices("b=")
        .find(|(i, _)| field[..*i].ends_with([' ', '\t']))
        .map(|(i, _)| i + 2)
        .unwrap();
    let (name, value) = field[..at].split_once(':').unwrap();
    relaxed_header(&mut hashed, name, value.as_bytes());
    let signature = BASE64.decode(tag(field, "b")).unwrap();
    let record = signer.dns_record().1;
    let p = BASE64.decode(record.rsplit("p=").next().unwrap()).unwrap();
    use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    match signer.algorithm() {
        "rsa-sha256" => {
            // The record's SubjectPublicKeyInfo holds the RSAPublicKey after 24 bytes of header.
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &p[24..])
                .verify(&hashed, &signature)
                .is_ok()
        }
        _ => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &hashed);
            UnparsedPublicKey::new(&ED25519, &p)
                .verify(digest.as_ref(), &signature)
                .is_ok()
        }
    }
}

#[test]
fn signatures_verify_and_break_when_a_signed_part_changes() {
    for pem in [RSA_PKCS8, ED25519] {
        let signer = signer(pem);
        let field = signer.sign(MESSAGE, 1_700_000_000).unwrap();
        let mut signed = field.clone().into_bytes();
        signed.extend_from_slice(MESSAGE);
        assert!(verify(&signer, MESSAGE, &field), "{}", signer.algorithm());

        // Refolding and whitespace changes survive relaxed canonicalization...
        let refolded = String::from_utf8(MESSAGE.to_vec())
            .unwrap()
            .replace(
                "Subject: Is dinner\r\n\tready?",
                "Subject:  Is dinner ready?  ",
            )
            .replace("game.  Are", "game. Are");
        assert!(verify(&signer, refolded.as_bytes(), &field));
        // ...an unsigned header may be added...
        let added = [b"X-Spam: no\r\n".as_slice(), MESSAGE].concat();
        assert!(verify(&signer, &added, &field));
        // ...but the body, a signed header or a second From may not change.
        let body = String::from_utf8(MESSAGE.to_vec())
            .unwrap()
            .replace("hungry", "Hungry");
        assert!(!verify(&signer, body.as_bytes(), &field));
        let subject = String::from_utf8(MESSAGE.to_vec())
            .unwrap()
            .replace("dinner", "lunch");
        assert!(!verify(&signer, subject.as_bytes(), &field));
        let second_from = [b"From: Mallory <m@example.org>\r\n".as_slice(), MESSAGE].concat();
        assert!(!verify(&signer, &second_from, &field));
    }
}

#[test]
fn ed25519_signatures_are_deterministic() {
    let signer = signer(ED25519);
    assert_eq!(
        signer.sign(MESSAGE, 1).unwrap(),
        signer.sign(MESSAGE, 1).unwrap()
    );
    assert_ne!(
        signer.sign(MESSAGE, 1).unwrap(),
        signer.sign(MESSAGE, 2).unwrap()
    );
}
