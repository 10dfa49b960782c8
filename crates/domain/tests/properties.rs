#![cfg(test)]
//! Property tests (proptest) for the token codec and for `EmailAddress::parse`.
//!
//! Every property runs proptest's default 256 cases, except the two on huge inputs, which run
//! 32; the whole file takes well under a second in a debug build. `PROPTEST_CASES=20000 cargo
//! test -p domain --test properties` runs more (it overrides both counts).
//!
//! # What "tampering" means for this codec
//!
//! The codec decodes signatures like Python itsdangerous does (lenient base64, see
//! `token.rs`), so a few one-character edits of the *signature* give another spelling of the
//! same signature and are accepted, as Python accepts them: a `-`/`+` or `_`/`/` swap, a
//! change of the 2 unused low bits of the last character, a `=` appended at the end, or a
//! non-ASCII character inserted anywhere in the signature (it is skipped, and its extra bytes
//! only change how much `=` padding is added). [`still_valid_after`] models exactly these
//! spellings; the tampering property checks that such a token verifies to the *original*
//! payload and timestamp and that every other edit is a bad signature. No edit ever yields
//! another payload.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{
    ConfirmationTokens, EmailAddress, EmailError, MAX_ADDRESS_LEN, MAX_LOCAL_LEN, MailboxKey,
    TimedSerializer, TokenError, Verified,
};
use hmac::{Hmac, KeyInit as _, Mac as _};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use sha1::{Digest as _, Sha1};

/// The latest signing time used with a `max_age`, so that `issued_at + max_age + 1` is still
/// a valid `i64` "now".
const MAX_TIMESTAMP: u64 = 1 << 62;

/// The URL-safe base64 alphabet plus the standard one's `+` and `/`.
const B64_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/";

// ---------------------------------------------------------------------------------------------
// Strategies

/// Any string of up to `max` arbitrary `char`s (control characters, newlines, non-ASCII).
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

/// A string of characters drawn from `chars`, of `len` characters.
fn text_of(chars: &'static str, len: std::ops::RangeInclusive<usize>) -> BoxedStrategy<String> {
    let chars: Vec<char> = chars.chars().collect();
    prop::collection::vec(prop::sample::select(chars), len)
        .prop_map(String::from_iter)
        .boxed()
}

/// A secret key: arbitrary bytes, sometimes empty.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=40)
}

/// Token payloads: arbitrary text, long compressible runs (zlib path), dotted base64-looking
/// text, and email-like strings.
fn payload() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(64),
        2 => (any::<char>(), 0..=600usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => (text(8), 0..=100usize).prop_map(|(s, n)| s.repeat(n)),
        1 => text_of("abcXYZ019-_.=+/", 0..=80),
        2 => email_like(),
    ]
}

/// Any JSON value a token can carry: nested arrays and objects of strings, integers over the
/// whole `i64` and `u64` ranges, finite floats, booleans and null.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        (-1e6..1e6f64).prop_map(Value::from),
        text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..=5).prop_map(Value::Array),
            prop::collection::vec((text(6), inner), 0..=5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// One character likely to matter to the token format, or any character at all.
fn token_char() -> impl Strategy<Value = char> {
    let b64: Vec<char> = B64_CHARS.chars().collect();
    prop_oneof![
        4 => prop::sample::select(b64),
        1 => Just('.'),
        1 => Just('='),
        1 => Just(' '),
        2 => any::<char>(),
    ]
}

/// Where an edit goes: anywhere in the token, or within its signature (where the accepted
/// respellings are), half of the time each.
#[derive(Debug, Clone, Copy)]
struct Place {
    in_signature: bool,
    index: Index,
}

impl Place {
    /// The byte offset in the ASCII `token`; an insertion may also go at the very end.
    fn resolve(self, token: &str, insertion: bool) -> usize {
        let extra = usize::from(insertion);
        if self.in_signature {
            let start = token.rfind('.').unwrap() + 1;
            start + self.index.index(token.len() - start + extra)
        } else {
            self.index.index(token.len() + extra)
        }
    }
}

/// A one-character edit of a token.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Place, char),
    Insert(Place, char),
    Delete(Place),
}

fn edit() -> impl Strategy<Value = Edit> {
    let place = (any::<bool>(), any::<Index>()).prop_map(|(in_signature, index)| Place {
        in_signature,
        index,
    });
    prop_oneof![
        (place.clone(), token_char()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (place.clone(), token_char()).prop_map(|(at, c)| Edit::Insert(at, c)),
        place.prop_map(Edit::Delete),
    ]
}

/// Strings that are not tokens: arbitrary text, dotted base64 junk, three-part junk with a
/// plausible signature length, and strings of only dots and padding.
fn junk_token() -> impl Strategy<Value = String> {
    let segment = || text_of("ABCxyz0189-_+/=", 0..=40);
    prop_oneof![
        3 => text(200),
        2 => prop::collection::vec(segment(), 1..=6).prop_map(|parts| parts.join(".")),
        2 => (segment(), segment(), text_of(B64_CHARS, 27..=27))
            .prop_map(|(p, t, s)| format!("{p}.{t}.{s}")),
        1 => text_of(".=", 0..=20),
        1 => (text(30), text(10), text(30)).prop_map(|(p, t, s)| format!("{p}.{t}.{s}")),
    ]
}

/// Strings shaped like email addresses, often valid, with the usual ways of going wrong:
/// surrounding whitespace (including CR/LF), mixed case, non-ASCII domains, punycode, a
/// trailing dot, long parts, and one stray character at a random place.
fn email_like() -> BoxedStrategy<String> {
    const ATEXT: &str = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-";
    let atom = text_of(ATEXT, 1..=12);
    let local = prop::collection::vec(atom, 1..=4).prop_map(|atoms| atoms.join("."));
    const LDH: &str = "abcdeklmxyzABCXYZ0189-";
    let label = prop_oneof![
        // Mostly valid: a letter or digit at both ends.
        4 => (text_of(LDH, 0..=12), prop::sample::select(vec!['a', 'Z', '7']))
            .prop_map(|(middle, end)| format!("{end}{middle}{end}")),
        1 => text_of(LDH, 1..=14),
        2 => text_of("aeouüöäßçñéÉÜБбдЖж漢字ΩωıİK", 1..=8),
        1 => Just("xn--bcher-kva".to_owned()),
        1 => text_of("abc", 60..=70),
    ];
    let domain = prop::collection::vec(label, 1..=4).prop_map(|labels| labels.join("."));
    let space = text_of(" \t\r\n", 0..=2);
    let stray = prop::option::weighted(
        0.2,
        (
            any::<Index>(),
            prop_oneof![
                Just('@'),
                Just('.'),
                Just('\r'),
                Just('\n'),
                Just('\0'),
                Just('<'),
                Just('"'),
                Just(' '),
                any::<char>(),
            ],
        ),
    );
    (
        space.clone(),
        local,
        domain,
        prop::bool::weighted(0.1),
        space,
        stray,
    )
        .prop_map(|(lead, local, domain, dot, trail, stray)| {
            let mut s = format!(
                "{lead}{local}@{domain}{}{trail}",
                if dot { "." } else { "" }
            );
            if let Some((at, c)) = stray {
                let boundaries: Vec<usize> =
                    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                s.insert(boundaries[at.index(boundaries.len())], c);
            }
            s
        })
        .boxed()
}

/// Inputs for `EmailAddress::parse`: mostly address-shaped, some arbitrary.
fn email_input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => email_like(),
        1 => text(80),
        1 => text_of("a@.-Bü ", 0..=300),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn serializer(keys: &[Vec<u8>], salt: &str) -> TimedSerializer {
    TimedSerializer::new(keys, salt).unwrap()
}

fn as_now(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap()
}

/// The 6-bit value of a base64 character (either alphabet), as the codec reads it.
fn sextet(c: char) -> Option<u8> {
    // `+` and `/` come last in `B64_CHARS` and read like `-` and `_`.
    let index = u8::try_from(B64_CHARS.find(c)?).unwrap();
    Some(match index {
        64 => 62,
        65 => 63,
        index => index,
    })
}

fn apply(token: &str, edit: &Edit) -> String {
    let mut out = token.to_owned();
    match edit {
        Edit::Replace(at, c) => {
            let at = at.resolve(token, false);
            out.replace_range(at..=at, &c.to_string());
        }
        Edit::Insert(at, c) => out.insert(at.resolve(token, true), *c),
        Edit::Delete(at) => {
            out.remove(at.resolve(token, false));
        }
    }
    out
}

/// Whether `edit` turns the canonical (ASCII) token `token` into another spelling of the same
/// signature that Python itsdangerous, and so this codec, accepts. See the module docs.
fn still_valid_after(token: &str, edit: &Edit) -> bool {
    let signature_start = token.rfind('.').unwrap() + 1;
    let last = token.len() - 1;
    match edit {
        Edit::Replace(at, c) => {
            let at = at.resolve(token, false);
            let old = sextet(char::from(token.as_bytes()[at]));
            match (old, sextet(*c)) {
                (Some(old), Some(new)) if at >= signature_start => {
                    old == new || (at == last && old >> 2 == new >> 2)
                }
                _ => false,
            }
        }
        Edit::Insert(at, c) => {
            let at = at.resolve(token, true);
            at >= signature_start && (c.len_utf8() > 1 || (*c == '=' && at == token.len()))
        }
        Edit::Delete(_) => false,
    }
}

/// Signs an arbitrary `value` (`payload.timestamp`, or anything else) the way itsdangerous
/// does, independently of the codec, so that verification gets past the signature check.
fn sign_raw(secret: &[u8], salt: &str, value: &str) -> String {
    let derived = Sha1::new()
        .chain_update(salt)
        .chain_update("signer")
        .chain_update(secret)
        .finalize();
    let mut mac = Hmac::<Sha1>::new_from_slice(&derived).unwrap();
    mac.update(value.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{value}.{signature}")
}

// ---------------------------------------------------------------------------------------------
// Token codec

proptest! {
    /// Sign any string at any time, verify with the same keys within `max_age` (at age 0, at
    /// exactly `max_age`, and in between): the same payload and timestamp come back.
    #[test]
    fn token_round_trip(
        keys in prop::collection::vec(key(), 1..=3),
        salt in text(16),
        payload in payload(),
        issued_at in 0..=MAX_TIMESTAMP,
        max_age in any::<u32>().prop_map(u64::from),
        age_seed in any::<u64>(),
    ) {
        let codec = serializer(&keys, &salt);
        let token = codec.sign(&Value::String(payload.clone()), issued_at);
        prop_assert!(
            token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "not URL-safe: {token}"
        );
        let want = Verified { payload: Value::String(payload), issued_at };
        for age in [0, max_age, age_seed % (max_age + 1)] {
            let verified = codec.verify(&token, Some(max_age), as_now(issued_at + age));
            prop_assert_eq!(verified, Ok(want.clone()));
        }
        prop_assert_eq!(codec.verify(&token, None, i64::MIN), Ok(want));
    }

    /// Any `u64` timestamp survives when the age is not checked.
    #[test]
    fn token_round_trip_any_timestamp(
        key in key(),
        payload in text(40),
        issued_at in any::<u64>(),
        now in any::<i64>(),
    ) {
        let codec = serializer(&[key], "salt");
        let token = codec.sign(&Value::String(payload.clone()), issued_at);
        prop_assert_eq!(
            codec.verify(&token, None, now),
            Ok(Verified { payload: Value::String(payload), issued_at })
        );
    }

    /// Any JSON value round-trips, whether we wrote the JSON (Python's formatting, floats as
    /// `repr(float)`) or `serde_json` did (the token signed independently of the codec).
    #[test]
    fn token_round_trip_json(key in key(), value in json_value(), issued_at in 0..=MAX_TIMESTAMP) {
        let codec = serializer(std::slice::from_ref(&key), "salt");
        let want = Ok(Verified { payload: value.clone(), issued_at });
        let ours = codec.sign(&value, issued_at);
        prop_assert_eq!(codec.verify(&ours, Some(0), as_now(issued_at)), want.clone());
        let json = serde_json::to_string(&value).unwrap();
        let timestamp = issued_at.to_be_bytes();
        let first = timestamp.iter().position(|&b| b != 0).unwrap_or(8);
        let value_part = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(&timestamp[first..])
        );
        let theirs = sign_raw(&key, "salt", &value_part);
        prop_assert_eq!(codec.verify(&theirs, Some(0), as_now(issued_at)), want);
    }

    /// Confirmation tokens carry the address exactly as parsed.
    #[test]
    fn confirmation_round_trip(
        keys in prop::collection::vec(key(), 1..=3),
        input in email_like(),
        now in 0..=as_now(MAX_TIMESTAMP),
        max_age in 0..=86_400u64,
    ) {
        let Ok(email) = EmailAddress::parse(&input) else { return Ok(()) };
        let tokens = ConfirmationTokens::new(&keys).unwrap();
        let token = tokens.issue(&email, now);
        let issued_at = u64::try_from(now).unwrap();
        let checked = tokens.check(&token, Some(max_age), now + as_now(max_age));
        prop_assert_eq!(
            checked,
            Ok(Verified { payload: email.as_str().to_owned(), issued_at })
        );
        prop_assert_eq!(
            tokens.check(&token, Some(max_age), now + as_now(max_age) + 1),
            Err(TokenError::Expired)
        );
    }

    /// One second past `max_age` is expired, and so is a token from the future.
    #[test]
    fn token_expires_one_second_after_max_age(
        key in key(),
        payload in payload(),
        issued_at in 1..=MAX_TIMESTAMP,
        max_age in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from)],
    ) {
        let codec = serializer(&[key], "email-confirm-salt");
        let token = codec.sign(&Value::String(payload), issued_at);
        prop_assert!(codec.verify(&token, Some(max_age), as_now(issued_at + max_age)).is_ok());
        prop_assert_eq!(
            codec.verify(&token, Some(max_age), as_now(issued_at + max_age + 1)),
            Err(TokenError::Expired)
        );
        prop_assert_eq!(
            codec.verify(&token, Some(max_age), as_now(issued_at - 1)),
            Err(TokenError::Expired)
        );
    }

    /// Changing, inserting or deleting one character never yields another payload: the token
    /// is a bad signature, unless the edit only respells the signature the way Python accepts
    /// (see the module docs), in which case the original payload and timestamp come back.
    #[test]
    fn tampering_never_verifies_another_payload(
        key in key(),
        payload in payload(),
        issued_at in 0..=MAX_TIMESTAMP,
        edit in edit(),
    ) {
        let codec = serializer(std::slice::from_ref(&key), "email-confirm-salt");
        let token = codec.sign(&Value::String(payload.clone()), issued_at);
        prop_assert_eq!(token.len() - token.rfind('.').unwrap() - 1, 27, "HMAC-SHA1 is 27 chars");
        let tampered = apply(&token, &edit);
        prop_assume!(tampered != token);
        let got = codec.verify(&tampered, Some(3600), as_now(issued_at));
        if still_valid_after(&token, &edit) {
            prop_assert_eq!(
                got,
                Ok(Verified { payload: Value::String(payload), issued_at }),
                "{} -> {}", token, tampered
            );
        } else {
            prop_assert_eq!(got, Err(TokenError::BadSignature), "{} -> {}", token, tampered);
        }
    }

    /// A token checked with other keys, or another salt, is a bad signature.
    #[test]
    fn other_keys_or_salt_are_a_bad_signature(
        key in key(),
        others in prop::collection::vec(key(), 1..=3),
        payload in payload(),
        issued_at in 0..=MAX_TIMESTAMP,
    ) {
        prop_assume!(!others.contains(&key));
        let token = serializer(std::slice::from_ref(&key), "salt").sign(&Value::String(payload), issued_at);
        let now = as_now(issued_at);
        prop_assert_eq!(
            serializer(&others, "salt").verify(&token, None, now),
            Err(TokenError::BadSignature)
        );
        prop_assert_eq!(
            serializer(&[key], "other-salt").verify(&token, None, now),
            Err(TokenError::BadSignature)
        );
    }

    /// Key rotation: a token signed with an older key verifies while that key is among the
    /// fallbacks, and is a bad signature once it is removed. The newest key signs.
    #[test]
    fn key_rotation(
        keys in prop::collection::btree_set(key(), 2..=5)
            .prop_map(|set| set.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
        fallback in any::<Index>(),
        payload in payload(),
        issued_at in 0..=MAX_TIMESTAMP,
    ) {
        let fallback = fallback.index(keys.len() - 1); // any key but the newest
        let old_key = keys[fallback].clone();
        let token = serializer(std::slice::from_ref(&old_key), "salt").sign(&Value::String(payload.clone()), issued_at);
        let now = as_now(issued_at);
        let want = Ok(Verified { payload: Value::String(payload.clone()), issued_at });

        let rotated = serializer(&keys, "salt");
        prop_assert_eq!(rotated.verify(&token, Some(0), now), want);
        let mut without = keys.clone();
        without.remove(fallback);
        prop_assert_eq!(
            serializer(&without, "salt").verify(&token, Some(0), now),
            Err(TokenError::BadSignature)
        );
        // New tokens are signed with the newest key only.
        let newest = keys.last().unwrap().clone();
        let fresh = rotated.sign(&Value::String(payload.clone()), issued_at);
        prop_assert_eq!(&fresh, &serializer(&[newest], "salt").sign(&Value::String(payload), issued_at));
        prop_assert_eq!(
            serializer(&[old_key], "salt").verify(&fresh, None, now),
            Err(TokenError::BadSignature)
        );
    }

    /// Anything that is not a token is refused, without panicking, as a bad signature.
    #[test]
    fn junk_is_a_bad_signature(key in key(), junk in junk_token(), now in any::<i64>(), max_age in any::<Option<u64>>()) {
        let codec = serializer(std::slice::from_ref(&key), ConfirmationTokens::SALT);
        prop_assert_eq!(codec.verify(&junk, max_age, now), Err(TokenError::BadSignature));
        let tokens = ConfirmationTokens::new(&[key]).unwrap();
        prop_assert_eq!(tokens.check(&junk, max_age, now), Err(TokenError::BadSignature));
    }

    /// Validly signed garbage (any payload and timestamp text behind a genuine signature)
    /// reaches the timestamp, base64, zlib and JSON decoders: no panic, and the verdict is
    /// consistent with the token's shape.
    #[test]
    fn signed_garbage_never_panics(
        key in key(),
        payload in prop_oneof![
            text(60),
            text_of(B64_CHARS, 0..=80),
            prop::collection::vec(any::<u8>(), 0..=80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            prop::collection::vec(any::<u8>(), 0..=80).prop_map(|b| format!(".{}", URL_SAFE_NO_PAD.encode(b))),
            text_of("{}[]\",:0123456789.eE-+truefalsn\\u ", 0..=60).prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
        ],
        timestamp in prop_oneof![
            text_of(B64_CHARS, 0..=12),
            text(6),
            any::<u64>().prop_map(|t| URL_SAFE_NO_PAD.encode(t.to_be_bytes())),
        ],
        now in any::<i64>(),
        max_age in any::<Option<u64>>(),
    ) {
        let salt = ConfirmationTokens::SALT;
        let codec = serializer(std::slice::from_ref(&key), salt);
        let token = sign_raw(&key, salt, &format!("{payload}.{timestamp}"));
        match codec.verify(&token, max_age, now) {
            Ok(verified) => {
                // A payload that verifies re-signs to a token that verifies the same way.
                let again = codec.sign(&verified.payload, verified.issued_at);
                prop_assert_eq!(codec.verify(&again, None, now), Ok(verified));
            }
            Err(TokenError::Expired) => prop_assert!(max_age.is_some()),
            Err(TokenError::BadSignature | TokenError::Malformed) => {}
        }
        let tokens = ConfirmationTokens::new(&[key]).unwrap();
        let _ = tokens.check(&token, max_age, now);
        // No `.` in the signed value: no timestamp, which Python calls a bad signature.
        let untimed = sign_raw(&[], salt, &payload.replace('.', ""));
        prop_assert_eq!(serializer(&[Vec::new()], salt).verify(&untimed, None, now), Err(TokenError::BadSignature));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Huge inputs (up to 256 KiB, arbitrary characters, many dots) are refused without
    /// panicking.
    #[test]
    fn huge_junk_is_a_bad_signature(chunk in text(16), dots in any::<bool>(), repeat in 1_000..=16_000usize) {
        let junk = if dots { format!("{chunk}.").repeat(repeat) } else { chunk.repeat(repeat) };
        let codec = serializer(&[b"k".to_vec()], "salt");
        prop_assert_eq!(codec.verify(&junk, Some(60), 0), Err(TokenError::BadSignature));
    }

    /// A huge validly signed payload is refused (or verified) without panicking.
    #[test]
    fn huge_signed_payload_never_panics(chunk in text_of(B64_CHARS, 1..=8), repeat in 1_000..=30_000usize, compressed in any::<bool>()) {
        let dot = if compressed { "." } else { "" };
        let token = sign_raw(b"k", "salt", &format!("{dot}{}.AQ", chunk.repeat(repeat)));
        let verdict = serializer(&[b"k".to_vec()], "salt").verify(&token, None, 0);
        prop_assert!(verdict.is_ok() || verdict == Err(TokenError::Malformed), "{:?}", verdict);
    }
}

// ---------------------------------------------------------------------------------------------
// Email addresses

/// The invariants of any accepted address.
fn check_address(input: &str, address: &EmailAddress) -> Result<(), TestCaseError> {
    let text = address.as_str();
    prop_assert_eq!(address.to_string(), text);
    prop_assert_eq!(
        format!("{}@{}", address.local_part(), address.domain()),
        text
    );
    prop_assert!(
        !text.chars().any(char::is_control),
        "control character in {:?}",
        text
    );
    prop_assert!(!text.contains(['\r', '\n', '\0']));
    prop_assert!(text.len() <= MAX_ADDRESS_LEN, "{} octets", text.len());
    prop_assert!(address.local_part().len() <= MAX_LOCAL_LEN);
    prop_assert!(address.local_part().is_ascii() && !address.local_part().is_empty());
    prop_assert!(
        address
            .domain()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
        "domain {:?}",
        address.domain()
    );
    // The local part is kept as typed.
    prop_assert!(input.trim().starts_with(address.local_part()));
    prop_assert_eq!(address.key(), text.to_ascii_lowercase());
    // Idempotent: the normal form parses to itself.
    prop_assert_eq!(EmailAddress::parse(text), Ok(address.clone()));
    Ok(())
}

proptest! {
    /// Any string: no panic; anything accepted satisfies the invariants and re-parses to
    /// itself.
    #[test]
    fn email_parse_invariants(input in email_input()) {
        if let Ok(address) = EmailAddress::parse(&input) {
            check_address(&input, &address)?;
        }
    }

    /// `key()` ignores ASCII case: upper-casing the input gives the same key, and the same
    /// verdict. (Not Unicode upper-casing: `ß` upper-cases to `SS`, and `straße.de` and
    /// `strasse.de` are different IDNA domains.)
    #[test]
    fn email_key_is_case_insensitive(input in email_input()) {
        let plain = EmailAddress::parse(&input);
        let upper = EmailAddress::parse(&input.to_ascii_uppercase());
        let lower = EmailAddress::parse(&input.to_ascii_lowercase());
        prop_assert_eq!(plain.is_ok(), upper.is_ok(), "{:?} {:?}", plain, upper);
        prop_assert_eq!(plain.is_ok(), lower.is_ok(), "{:?} {:?}", plain, lower);
        if let (Ok(plain), Ok(upper), Ok(lower)) = (plain, upper, lower) {
            prop_assert_eq!(plain.key(), upper.key());
            prop_assert_eq!(plain.key(), lower.key());
            prop_assert_eq!(plain.domain(), upper.domain());
        }
    }

    /// CR, LF and NUL inside an address are always refused. Surrounding whitespace, CR and LF
    /// included, is trimmed first, so there they are dropped rather than refused; NUL is
    /// never whitespace.
    #[test]
    fn email_line_breaks_and_nul_are_refused(
        input in email_like(),
        at in any::<Index>(),
        bad in prop::sample::select(vec!['\r', '\n', '\0']),
    ) {
        let boundaries: Vec<usize> = input.char_indices().map(|(i, _)| i).chain([input.len()]).collect();
        let mut s = input.clone();
        s.insert(boundaries[at.index(boundaries.len())], bad);
        let verdict = EmailAddress::parse(&s);
        if s.trim().contains(['\r', '\n', '\0']) {
            prop_assert!(
                matches!(verdict, Err(EmailError::ControlCharacter | EmailError::TooLong)),
                "{:?} -> {:?}", s, verdict
            );
        } else {
            // The character was trimmed away, with the other surrounding whitespace.
            prop_assert_ne!(bad, '\0');
            prop_assert_eq!(&verdict, &EmailAddress::parse(&input));
        }
        if let Ok(address) = verdict {
            check_address(&s, &address)?;
        }
    }
}

#[test]
fn unicode_upper_case_can_change_an_idna_domain() {
    // Documents why the case property above is ASCII-only.
    let sharp = EmailAddress::parse("user@straße.de").unwrap();
    let upper = EmailAddress::parse(&"user@straße.de".to_uppercase()).unwrap();
    assert_eq!(sharp.domain(), "xn--strae-oqa.de");
    assert_eq!(upper.domain(), "strasse.de");
    assert_ne!(sharp.key(), upper.key());
}

proptest! {
    /// The mailbox key is lower case and canonical: the key of a key is itself, changing the
    /// ASCII case or adding a `+tag` never changes it, and for Gmail neither do dots in the
    /// local part nor `googlemail.com` for `gmail.com`.
    #[test]
    fn mailbox_key_is_canonical(
        input in email_like(),
        tag in text_of("abcXYZ019-_", 0..=8),
        gmail in any::<bool>(),
        dot_at in any::<Index>(),
    ) {
        let Ok(address) = EmailAddress::parse(&input) else {
            return Ok(());
        };
        let key = address.mailbox_key();
        prop_assert_eq!(key.as_str(), key.as_str().to_ascii_lowercase());
        prop_assert_eq!(MailboxKey::parse(key.as_str()), Ok(key.clone()));
        let upper = EmailAddress::parse(&input.to_ascii_uppercase());
        if let Ok(upper) = upper {
            prop_assert_eq!(upper.mailbox_key(), key.clone());
        }
        let local = address.local_part();
        if !local.starts_with('+') && local.len() + tag.len() < 60 {
            let tagged = format!("{local}+{tag}@{}", address.domain());
            if let Ok(tagged) = EmailAddress::parse(&tagged) {
                prop_assert_eq!(tagged.mailbox_key(), key.clone());
            }
        }
        if gmail && !local.contains('+') && local.len() < 60 {
            let plain = EmailAddress::parse(&format!("{local}@gmail.com")).unwrap();
            // A dot inserted between two characters that are not dots already.
            let chars: Vec<char> = local.chars().collect();
            let at = 1 + dot_at.index(chars.len().max(2) - 1);
            if at < chars.len() && chars[at - 1] != '.' && chars[at] != '.' {
                let dotted: String = chars[..at].iter().chain(['.'].iter()).chain(chars[at..].iter()).collect();
                let dotted = EmailAddress::parse(&format!("{dotted}@googlemail.com")).unwrap();
                prop_assert_eq!(dotted.mailbox_key(), plain.mailbox_key());
            }
            prop_assert!(!plain.mailbox_key().as_str().split('@').next().unwrap_or("").contains('.'));
        }
    }
}
