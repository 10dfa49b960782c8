//! A confirmation link a Flask app would accept, and the check of one it sent:
//! `cargo run -p itsdangerous-compat --example flask_link -- my_precious test@test.com`.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its answer"
)]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use itsdangerous_compat::TimedSerializer;
use serde_json::Value;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(email)) = (args.next(), args.next()) else {
        eprintln!("usage: flask_link SECRET_KEY EMAIL");
        return ExitCode::from(2);
    };
    let Ok(tokens) = TimedSerializer::new(&[secret], "email-confirm-salt") else {
        eprintln!("a secret key is required");
        return ExitCode::from(2);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = tokens.sign(&Value::String(email), now);
    println!("https://example.com/confirm/{token}");
    match tokens.verify(&token, Some(3600), i64::try_from(now).unwrap_or(i64::MAX)) {
        Ok(verified) => {
            println!(
                "verifies: {} signed at {}",
                verified.payload, verified.issued_at
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("does not verify: {error}");
            ExitCode::FAILURE
        }
    }
}
