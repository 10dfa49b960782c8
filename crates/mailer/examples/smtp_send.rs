//! Sends one message through an SMTP server:
//! `cargo run -p confirm-mailer --example smtp_send -- smtp://127.0.0.1:2525 'Me <me@example.com>' you@example.com`.
//! A failure is printed as the retry policy sees it (`transient`, `permanent` or `account`).

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its answer"
)]

use std::process::ExitCode;

use confirm_mailer::{EmailAddress, Mailer, Message, Sender, SmtpMailer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, from, to] = args.as_slice() else {
        eprintln!("usage: smtp_send SMTP_URL FROM TO");
        return ExitCode::from(2);
    };
    let (sender, to) = match (Sender::parse(from), EmailAddress::parse(to)) {
        (Ok(sender), Ok(to)) => (sender, to),
        (Err(error), _) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
        (_, Err(error)) => {
            eprintln!("TO: {error}");
            return ExitCode::from(2);
        }
    };
    let mailer = match SmtpMailer::from_url(url, sender) {
        Ok(mailer) => mailer,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let message = Message {
        to,
        subject: "Hello from the mailer crate".to_owned(),
        text: "It works.\n".to_owned(),
        html: Some("<p>It works.</p>\n".to_owned()),
        action_url: None,
    };
    match mailer.send(&message).await {
        Ok(sent) => {
            println!("sent: {}", sent.provider_message_id.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
