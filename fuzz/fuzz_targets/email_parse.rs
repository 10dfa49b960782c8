//! Arbitrary bytes (as UTF-8, lossily) against `EmailAddress::parse`: no panic, and whatever
//! is accepted keeps the invariants of `crates/domain/tests/properties.rs`.
#![no_main]

use domain::{EmailAddress, MAX_ADDRESS_LEN, MAX_LOCAL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(address) = EmailAddress::parse(&input) else {
        return;
    };
    let text = address.as_str();

    // CR, LF and NUL never get through (surrounding CR/LF is trimmed, NUL never is).
    assert!(!input.trim().contains(['\r', '\n', '\0']), "{input:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");

    // RFC 5321 lengths and the normal form.
    assert!(text.len() <= MAX_ADDRESS_LEN, "{text:?}");
    assert!(address.local_part().len() <= MAX_LOCAL_LEN, "{text:?}");
    assert!(!address.local_part().is_empty() && address.local_part().is_ascii());
    assert!(input.trim().starts_with(address.local_part()));
    assert!(
        address
            .domain()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
        "{text:?}"
    );
    assert_eq!(
        format!("{}@{}", address.local_part(), address.domain()),
        text
    );
    assert_eq!(address.to_string(), text);
    assert_eq!(address.key(), text.to_ascii_lowercase());

    // Idempotent.
    assert_eq!(EmailAddress::parse(text), Ok(address.clone()), "{text:?}");

    // ASCII case does not matter to the key.
    let upper = EmailAddress::parse(&input.to_ascii_uppercase());
    let lower = EmailAddress::parse(&input.to_ascii_lowercase());
    match (upper, lower) {
        (Ok(upper), Ok(lower)) => {
            assert_eq!(upper.key(), address.key(), "{input:?}");
            assert_eq!(lower.key(), address.key(), "{input:?}");
        }
        (upper, lower) => panic!("{input:?}: case changed the verdict: {upper:?} {lower:?}"),
    }
});
