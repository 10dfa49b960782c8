//! DKIM signatures checked by an independent verifier, Python's `dkimpy`.
//!
//! Runs only when `DKIMPY_PYTHON` names a Python interpreter with `dkimpy` installed, e.g.
//! `DKIMPY_PYTHON=python3 cargo test -p mailer --test dkim` (`.ci/run` sets it). If the variable
//! is set but the interpreter or the module is missing, the test fails.
//!
//! Messages as the transports send them (text + HTML, a non-ASCII subject, a long link) are
//! signed with RSA-2048 (both PEM forms) and Ed25519 keys and written by the file transport;
//! dkimpy verifies each against the DNS record `DkimSigner::dns_record` gives, and refuses
//! each once its body or subject is changed.

// Marks the helpers below as test code, so clippy's test allowances (unwrap, panic) apply.
#![cfg(test)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use confirm_mailer::EmailAddress;
use confirm_mailer::{DkimSigner, FileMailer, Mailer, Message, Sender};

const PYTHON_ENV: &str = "DKIMPY_PYTHON";

/// argv: the TXT record's name and value; stdin: a JSON list of messages (latin-1 strings);
/// stdout: one `true`/`false` per message.
const SCRIPT: &str = r#"
import json, sys
import dkim

name, record = sys.argv[1], sys.argv[2].encode()

def dnsfunc(domain, timeout=5):
    if isinstance(domain, bytes):
        domain = domain.decode()
    return record if domain.rstrip(".") == name else None

for message in json.load(sys.stdin):
    print("true" if dkim.verify(message.encode("latin-1"), dnsfunc=dnsfunc) else "false")
"#;

/// dkimpy's verdict on each message, or `None` without `DKIMPY_PYTHON`.
fn dkimpy_verdicts(signer: &DkimSigner, messages: &[Vec<u8>]) -> Option<Vec<bool>> {
    let python = std::env::var(PYTHON_ENV).ok()?;
    let (name, record) = signer.dns_record();
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT, &name, &record])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON_ENV}={python}: {e}"));
    let latin1: Vec<String> = messages
        .iter()
        .map(|m| m.iter().map(|b| char::from(*b)).collect())
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&latin1).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy failed (is it installed? pip install dkimpy): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l == "true")
            .collect(),
    )
}

async fn signed_message(signer: DkimSigner) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let sender = Sender::parse("Confirmation Service <no-reply@mail.example.com>")
        .unwrap()
        .with_dkim(signer)
        .unwrap();
    let mailer = FileMailer::new(tmp.path(), sender);
    let link = format!("http://127.0.0.1:5003/confirm/{}", "Ab.Cd-".repeat(30));
    mailer
        .send(&Message {
            to: EmailAddress::parse("Someone@Example.net").unwrap(),
            subject: "Bestätigen Sie Ihr Konto".into(),
            text: format!("Welcome!  Thanks for signing up.\n\n{link}\n\n\n"),
            html: Some(format!(
                "<p>Welcome! \t Thanks for signing up.</p>\n<p><a href=\"{link}\">{link}</a></p>\n"
            )),
            action_url: Some(link),
        })
        .await
        .unwrap();
    let file = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    std::fs::read(file).unwrap()
}

fn replace(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text: String = message.iter().map(|b| char::from(*b)).collect();
    assert!(text.contains(from), "{from:?} is in the message");
    text.replacen(from, to, 1)
        .chars()
        .map(|c| c as u8)
        .collect()
}

#[tokio::test]
async fn dkimpy_verifies_our_rsa_and_ed25519_signatures() {
    if std::env::var(PYTHON_ENV).is_err() {
        eprintln!("skipped: set {PYTHON_ENV} to a Python with dkimpy to run this test");
        return;
    }
    let keys: [(&str, &[u8]); 3] = [
        (
            "rsa-sha256",
            include_bytes!("../src/dkim/tests/rsa2048.pem"),
        ),
        (
            "rsa-sha256",
            include_bytes!("../src/dkim/tests/rsa2048-pkcs1.pem"),
        ),
        (
            "ed25519-sha256",
            include_bytes!("../src/dkim/tests/ed25519.pem"),
        ),
    ];
    for (algorithm, pem) in keys {
        let signer = || DkimSigner::from_pem("example.com", "confirm2026", pem).unwrap();
        assert_eq!(signer().algorithm(), algorithm);
        let message = signed_message(signer()).await;
        let body_changed = replace(&message, "Thanks for signing up", "Thanks for signing in");
        let subject_changed = replace(&message, "Subject: ", "Subject: Re: ");
        let verdicts =
            dkimpy_verdicts(&signer(), &[message, body_changed, subject_changed]).unwrap();
        assert_eq!(verdicts, [true, false, false], "{algorithm}");
    }
}
