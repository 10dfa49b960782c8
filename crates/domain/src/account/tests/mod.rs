use super::*;
use crate::{EmailAddress, Password, PasswordResetTokens, Passwords, TokenError};

#[test]
fn session_tokens_are_random_and_only_their_fingerprint_is_kept() {
    let a = SessionToken::generate();
    let b = SessionToken::generate();
    assert_ne!(a, b);
    assert_eq!(SessionToken::parse(a.as_str()), Some(a.clone()));
    assert_eq!(a.fingerprint().len(), 64);
    assert_ne!(a.fingerprint(), a.as_str());
    assert_eq!(format!("{a:?}"), "SessionToken(…)");
    for bad in [
        "",
        "short",
        &format!("{}!", &a.as_str()[..42]),
        &format!("{}a", a.as_str()),
    ] {
        assert_eq!(SessionToken::parse(bad), None, "{bad:?}");
    }
}

/// RFC 6238, appendix B, SHA-1 (the 20-byte ASCII secret "12345678901234567890"), six digits.
#[test]
fn codes_match_rfc_6238_vectors() {
    let secret = TotpSecret(b"12345678901234567890".to_vec());
    let totp = Totp::new(&secret, "Example", "a@example.com").unwrap();
    for (time, code) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
    ] {
        assert_eq!(totp.code_at(time), code, "at {time}");
    }
}

#[test]
fn a_code_is_accepted_once_and_within_one_step() {
    let secret = TotpSecret::generate();
    let totp = Totp::new(&secret, "Example", "a@example.com").unwrap();
    let now = 1_700_000_015;
    let step = now / TOTP_STEP_SECONDS;
    let code = totp.code_at(now);
    assert_eq!(totp.verify(&code, now, None), Some(step));
    assert_eq!(
        totp.verify(&format!("{} {}", &code[..3], &code[3..]), now, None),
        Some(step)
    );
    // Used: refused, and so is an older one.
    assert_eq!(totp.verify(&code, now, Some(step)), None);
    let previous = totp.code_at(now - 30);
    assert_eq!(totp.verify(&previous, now, Some(step)), None);
    // The next step's code is still accepted after this one.
    let next = totp.code_at(now + 30);
    assert_eq!(totp.verify(&next, now, Some(step)), Some(step + 1));
    // Two steps away: refused.
    assert_eq!(totp.verify(&totp.code_at(now + 60), now, None), None);
    assert_eq!(totp.verify(&totp.code_at(now - 60), now, None), None);
    for bad in ["", "12345", "1234567", "abcdef"] {
        assert_eq!(totp.verify(bad, now, None), None);
    }
}

#[test]
fn the_url_names_the_issuer_and_carries_the_secret() {
    let secret = TotpSecret::generate();
    let totp = Totp::new(&secret, "Confirm Email", "a@example.com").unwrap();
    let url = totp.url();
    assert!(
        url.starts_with("otpauth://totp/Confirm%20Email:a%40example.com?"),
        "{url}"
    );
    assert!(
        url.contains(&format!("secret={}", secret.base32())),
        "{url}"
    );
    assert_eq!(
        TotpSecret::from_base32(&secret.base32()),
        Some(secret.clone())
    );
    assert_eq!(TotpSecret::from_base32("AAAA"), None, "too short");
    assert_eq!(TotpSecret::from_base32("not base32!"), None);
    assert_eq!(format!("{secret:?}"), "TotpSecret(…)");
}

#[test]
fn recovery_codes_are_ten_distinct_and_hash_however_typed() {
    let codes = generate_recovery_codes();
    assert_eq!(codes.len(), RECOVERY_CODES);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), RECOVERY_CODES);
    for code in &codes {
        assert_eq!(code.len(), 11, "{code}");
        assert_eq!(&code[5..6], "-");
        let hash = recovery_code_hash(code).unwrap();
        assert_eq!(recovery_code_hash(&code.to_uppercase()), Some(hash.clone()));
        assert_eq!(
            recovery_code_hash(&code.replace('-', " ")),
            Some(hash.clone())
        );
        assert_eq!(hash.len(), 64);
    }
    assert_eq!(
        recovery_code_hash("abcde-fghi0"),
        None,
        "0 is not in the alphabet"
    );
    assert_eq!(recovery_code_hash("abcde"), None);
}

#[test]
fn a_reset_link_is_bound_to_the_password_and_lasts_thirty_minutes() {
    let tokens = PasswordResetTokens::new(&["k"]).unwrap();
    let email = EmailAddress::parse("a@example.com").unwrap();
    let passwords = Passwords::new().unwrap();
    let hash = passwords
        .hash(&Password::new("correct horse").unwrap())
        .unwrap();
    let binding = PasswordHashString::binding(Some(&hash));
    assert_eq!(binding.len(), 16);
    assert_ne!(binding, PasswordHashString::binding(None));
    let again = passwords
        .hash(&Password::new("correct horse").unwrap())
        .unwrap();
    assert_ne!(
        binding,
        PasswordHashString::binding(Some(&again)),
        "a new salt, a new binding"
    );

    let now = 1_700_000_000;
    let token = tokens.issue(&email, &binding, now);
    let reset = tokens.check(&token, now + 1799).unwrap();
    assert_eq!(reset.email, "a@example.com");
    assert_eq!(reset.binding, binding);
    assert!(matches!(
        tokens.check(&token, now + 1801),
        Err(TokenError::Expired)
    ));
    // Other keys, other salts: refused.
    let other = PasswordResetTokens::new(&["other"]).unwrap();
    assert!(other.check(&token, now).is_err());
    let confirm = crate::ConfirmationTokens::new(&["k"]).unwrap();
    assert!(confirm.check(&token, None, now).is_err());
    assert!(tokens.check(&confirm.issue(&email, now), now).is_err());
    assert_eq!(confirm.reset_tokens().issue(&email, &binding, now), token);
}
