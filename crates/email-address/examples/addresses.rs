//! Parses the addresses given as arguments and prints what the crate makes of each: the address
//! to send to, the account identity, the mailbox key and the masked form for logs.
//!
//! `cargo run -p confirm-email-address --example addresses -- 'Ada.Lovelace+news@GoogleMail.com'`
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use confirm_email_address::EmailAddress;

fn main() {
    let inputs: Vec<String> = std::env::args().skip(1).collect();
    let inputs = if inputs.is_empty() {
        vec![
            "Ada.Lovelace+news@GoogleMail.com".to_owned(),
            "someone@Bücher.Example".to_owned(),
            "Eve <eve@example.com>".to_owned(),
        ]
    } else {
        inputs
    };
    for input in inputs {
        match EmailAddress::parse(&input) {
            Ok(address) => println!(
                "{input:?}: send to {address}, account {}, mailbox {}, logged as {}",
                address.key(),
                address.mailbox_key().as_str(),
                address.masked()
            ),
            Err(error) => println!("{input:?}: refused: {error}"),
        }
    }
}
