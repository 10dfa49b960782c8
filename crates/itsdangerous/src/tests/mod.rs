use serde_json::json;

use super::*;

/// The tutorial's confirmation salt.
const SALT: &str = "email-confirm-salt";

const README_TOKEN: &str = "InRlc3RAdGVzdC5jb20i.ZVPxAA.csFMigfTbSNDX2OTE_5JJyR5gp8";

fn serializer(keys: &[&str]) -> TimedSerializer {
    TimedSerializer::new(keys, SALT).unwrap()
}

/// Signs an arbitrary value string the way itsdangerous does, computed independently of
/// the module's own signing code.
fn sign_raw(secret: &str, salt: &str, value: &str) -> String {
    let derived = Sha1::new()
        .chain_update(salt)
        .chain_update("signer")
        .chain_update(secret)
        .finalize();
    let mut mac = HmacSha1::new_from_slice(&derived).unwrap();
    mac.update(value.as_bytes());
    format!(
        "{value}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn signs_like_python() {
    let tokens = serializer(&["my_precious"]);
    assert_eq!(
        tokens.sign(&json!("test@test.com"), 1_700_000_000),
        README_TOKEN
    );
    let verified = tokens
        .verify(README_TOKEN, Some(3600), 1_700_000_010)
        .unwrap();
    assert_eq!(
        verified,
        Verified {
            payload: json!("test@test.com"),
            issued_at: 1_700_000_000
        }
    );
    // The independent signer agrees with ours.
    let value = README_TOKEN.rsplit_once('.').unwrap().0;
    assert_eq!(sign_raw("my_precious", SALT, value), README_TOKEN);
}

#[test]
fn key_rotation() {
    let old = serializer(&["old-key"]);
    let rotated = serializer(&["old-key", "new-key"]);
    let new_only = serializer(&["new-key"]);
    let old_token = old.sign(&json!("a@example.com"), 100);

    assert_eq!(
        rotated.verify(&old_token, None, 100).unwrap().payload,
        json!("a@example.com")
    );
    let rotated_token = rotated.sign(&json!("a@example.com"), 100);
    assert_ne!(rotated_token, old_token);
    assert_eq!(rotated_token, new_only.sign(&json!("a@example.com"), 100));
    assert!(new_only.verify(&rotated_token, None, 100).is_ok());
    assert_eq!(
        old.verify(&rotated_token, None, 100),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        new_only.verify(&old_token, None, 100),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn requires_a_key() {
    let none: [&str; 0] = [];
    assert_eq!(
        TimedSerializer::new(&none, "salt").unwrap_err(),
        NoSecretKey
    );
}

#[test]
fn age_checks() {
    let tokens = serializer(&["k"]);
    let token = tokens.sign(&json!(1), 1000);
    assert!(tokens.verify(&token, Some(10), 1010).is_ok());
    assert_eq!(
        tokens.verify(&token, Some(10), 1011),
        Err(TokenError::Expired)
    );
    assert!(tokens.verify(&token, Some(0), 1000).is_ok());
    // Signed in the future: expired when the age is checked, fine when it is not.
    assert_eq!(
        tokens.verify(&token, Some(10), 999),
        Err(TokenError::Expired)
    );
    assert_eq!(
        tokens.verify(&token, Some(u64::MAX), -5),
        Err(TokenError::Expired)
    );
    assert_eq!(tokens.verify(&token, None, 999).unwrap().issued_at, 1000);
    // Extreme values do not overflow.
    let max = tokens.sign(&json!(1), u64::MAX);
    assert_eq!(
        tokens.verify(&max, Some(u64::MAX), i64::MAX),
        Err(TokenError::Expired)
    );
    assert_eq!(
        tokens.verify(&max, None, i64::MIN).unwrap().issued_at,
        u64::MAX
    );
    assert_eq!(
        tokens
            .verify(&token, Some(u64::MAX), i64::MAX)
            .unwrap()
            .issued_at,
        1000
    );
}

#[test]
fn timestamp_encoding() {
    assert_eq!(timestamp_bytes(0), Vec::<u8>::new());
    assert_eq!(timestamp_bytes(255), vec![255]);
    assert_eq!(timestamp_bytes(256), vec![1, 0]);
    assert_eq!(timestamp_bytes(1_700_000_000), vec![0x65, 0x53, 0xf1, 0x00]);
    let tokens = serializer(&["k"]);
    // Timestamp 0 is an empty part, as in Python: `payload..signature`.
    let zero = tokens.sign(&json!("x"), 0);
    assert!(zero.starts_with("Ingi.."), "{zero}");
    assert_eq!(tokens.verify(&zero, Some(5), 5).unwrap().issued_at, 0);
}

#[test]
fn tampering_is_a_bad_signature() {
    let tokens = serializer(&["my_precious"]);
    let forged = README_TOKEN.replacen("InRlc3RAdGVzdC5jb20i", &b64(b"\"evil@test.com\""), 1);
    assert_eq!(
        tokens.verify(&forged, None, 0),
        Err(TokenError::BadSignature)
    );
    let later = README_TOKEN.replacen("ZVPxAA", "ZVPxAQ", 1);
    assert_eq!(
        tokens.verify(&later, None, 0),
        Err(TokenError::BadSignature)
    );
    let other_salt = TimedSerializer::new(&["my_precious"], "password-reset-salt").unwrap();
    assert_eq!(
        other_salt.verify(README_TOKEN, None, 0),
        Err(TokenError::BadSignature)
    );
    for garbage in [
        "",
        "invalid",
        ".",
        "..",
        "a.b.c",
        "é.é.é",
        "InRlc3RAdGVzdC5jb20i.ZVPxAA.",
    ] {
        assert_eq!(
            tokens.verify(garbage, None, 0),
            Err(TokenError::BadSignature),
            "{garbage:?}"
        );
    }
}

#[test]
fn signature_spellings_match_python() {
    // Verdicts from itsdangerous 2.2.0 `loads(token, max_age=100)` at 1700000010.
    let tokens = serializer(&["my_precious"]);
    let sig = README_TOKEN.rsplit_once('.').unwrap().1;
    let value = README_TOKEN.rsplit_once('.').unwrap().0;
    let stem = &sig[..sig.len() - 1];
    let cases: &[(String, bool)] = &[
        (sig.to_owned(), true),
        (format!("{stem}9"), true), // only unused low bits differ
        (format!("{stem}/"), true),
        (format!("{stem}+"), true),
        (sig.replace('_', "/"), true),
        (format!("{sig}="), true),
        (format!("{sig}=="), true),
        (format!("{sig}=!!"), true),
        (format!("{stem}9="), true),
        (sig.replacen("csFM", "cséFM", 1), true), // é is 2 bytes: 29 bytes, padded to 32
        (format!("{sig}!"), false),
        (format!("{sig}!!!!!"), false),
        (stem.to_owned(), false),
        (format!("{sig}A"), false),
        (sig.replacen("csFM", "cs FM", 1), false), // 28 bytes, 27 data chars: bad padding
    ];
    for (signature, accepted) in cases {
        let token = format!("{value}.{signature}");
        let got = tokens.verify(&token, Some(100), 1_700_000_010);
        if *accepted {
            assert_eq!(
                got.map(|v| v.payload),
                Ok(json!("test@test.com")),
                "{token}"
            );
        } else {
            assert_eq!(got, Err(TokenError::BadSignature), "{token}");
        }
    }
    // Padding on the timestamp is part of the signed value, so it breaks the signature.
    let padded = README_TOKEN.replacen("ZVPxAA.", "ZVPxAA=.", 1);
    assert_eq!(
        tokens.verify(&padded, None, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn lenient_base64_matches_python() {
    // Outputs of itsdangerous.encoding.base64_decode (CPython 3.11).
    let ok: &[(&[u8], &[u8])] = &[
        (b"", b""),
        (b"QQ", b"A"),
        (b"QQ=", b"A"),
        (b"QQ==", b"A"),
        (b"QUJD", b"ABC"),
        (b"QUJ", b"AB"),
        (b"QR", b"A"),
        (b"QQ=QQ", b"\x41\x04\x10"),
        (b"QQ==QUJD", b"A"),
        ("QUJDé".as_bytes(), b"ABC"),
        (b"-_-_", b"\xfb\xff\xbf"),
        (b"+/+/", b"\xfb\xff\xbf"),
        (b"QUJD=", b"ABC"),
        (b"QUI=x", b"AB"),
        (b"QU JD\n", b"ABC"),
        (b"QUJ=D", b"AB"),
        (b"Q=Q=Q", b"\x41\x04"),
        (b"====", b""),
        (b"QQ=Q=", b"\x41\x04"),
        (b"QUJDRQ=x=", b"ABCE\x0c"),
        (b"\xff\xfeQUJD", b"ABC"),
        (b"Q.U.J.D", b"ABC"),
    ];
    for (input, want) in ok {
        assert_eq!(
            lenient_b64decode(input).as_deref(),
            Some(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    for input in [&b"Q"[..], b"Q!Q", b"Q===", b"QUJDQ", b"QUJDQUJ!"] {
        assert_eq!(
            lenient_b64decode(input),
            None,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn undecodable_payload_with_valid_signature_is_malformed() {
    let tokens = serializer(&["k"]);
    let ts = b64(&timestamp_bytes(50));
    let bad_zlib = format!(".{}", b64(b"not zlib at all"));
    let truncated = zlib::compress(b"\"hello hello hello hello\"").unwrap();
    let truncated = format!(".{}", b64(&truncated[..truncated.len() - 3]));
    let payloads = [
        "Q".to_owned(),           // base64 with a lone character
        "QQ=Q".to_owned(),        // incorrect padding
        b64(b"{not json"),        // base64 fine, JSON not
        b64(b"\xff\xfe\"x\""),    // not UTF-8
        b64(b"NaN"),              // Python reads NaN; serde_json does not
        bad_zlib,                 // '.' but not zlib
        truncated,                // incomplete zlib stream
        format!(".{}", b64(b"")), // empty zlib stream
        String::new(),            // empty JSON
    ];
    for payload in payloads {
        let token = sign_raw("k", SALT, &format!("{payload}.{ts}"));
        assert_eq!(
            tokens.verify(&token, Some(10), 55),
            Err(TokenError::Malformed),
            "{token}"
        );
        // Expiry is checked before the payload is decoded, as in Python.
        assert_eq!(
            tokens.verify(&token, Some(10), 500),
            Err(TokenError::Expired),
            "{token}"
        );
    }
}

#[test]
fn bad_timestamp_with_valid_signature_is_a_bad_signature() {
    let tokens = serializer(&["k"]);
    let payload = b64(b"1");
    for value in [
        payload.clone(),                       // no timestamp at all
        format!("{payload}.Q"),                // undecodable
        format!("{payload}.{}", b64(&[1; 9])), // more than 8 bytes
    ] {
        let token = sign_raw("k", SALT, &value);
        assert_eq!(
            tokens.verify(&token, None, 0),
            Err(TokenError::BadSignature),
            "{token}"
        );
    }
    // Eight bytes with a leading zero still fit, as do extra unused characters.
    let token = sign_raw(
        "k",
        SALT,
        &format!("{payload}.{}", b64(&[0, 0, 0, 0, 0, 0, 1, 2])),
    );
    assert_eq!(tokens.verify(&token, None, 0).unwrap().issued_at, 258);
    let token = sign_raw("k", SALT, &format!("{payload}.AQI!!"));
    assert_eq!(tokens.verify(&token, None, 0).unwrap().issued_at, 258);
    // ...but not when they leave the padding short (Python: "Incorrect padding").
    let token = sign_raw("k", SALT, &format!("{payload}.AQI!"));
    assert_eq!(
        tokens.verify(&token, None, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn trailing_bytes_after_the_zlib_stream_are_ignored_like_python() {
    let tokens = serializer(&["k"]);
    let mut stream = zlib::compress(b"[\"x\",\"x\",\"x\"]").unwrap();
    stream.extend_from_slice(b"garbage");
    let token = sign_raw("k", SALT, &format!(".{}.{}", b64(&stream), b64(&[7])));
    assert_eq!(
        tokens.verify(&token, None, 0).unwrap().payload,
        json!(["x", "x", "x"])
    );
}

#[test]
fn zlib_bomb_is_malformed() {
    let tokens = serializer(&["k"]);
    let sign_json = |json: &[u8]| {
        let value = format!(".{}.{}", b64(&zlib::compress(json).unwrap()), b64(&[1]));
        sign_raw("k", SALT, &value)
    };
    // 16 MiB of spaces inflated from a few kilobytes.
    let bomb = sign_json(&vec![b' '; 16 << 20]);
    assert!(bomb.len() < 40_000, "{}", bomb.len());
    assert_eq!(tokens.verify(&bomb, None, 0), Err(TokenError::Malformed));
    // The limit is on the inflated JSON: just under passes, just over does not.
    let fits = format!("\"{}\"", "a".repeat(MAX_PAYLOAD_LEN - 2));
    assert_eq!(
        tokens
            .verify(&sign_json(fits.as_bytes()), None, 0)
            .unwrap()
            .payload
            .as_str()
            .map(str::len),
        Some(MAX_PAYLOAD_LEN - 2)
    );
    let over = format!("\"{}\"", "a".repeat(MAX_PAYLOAD_LEN - 1));
    assert_eq!(
        tokens.verify(&sign_json(over.as_bytes()), None, 0),
        Err(TokenError::Malformed)
    );
}

#[test]
fn the_reused_deflate_state_gives_the_bytes_of_a_fresh_one() {
    use std::io::Write as _;
    let fresh = |data: &[u8]| {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    };
    let inputs = [
        "a".repeat(200),
        "\"someone@example.com\"".to_owned(),
        "xyz".repeat(5000),
        String::new(),
        "a".repeat(200),
    ];
    for input in &inputs {
        assert_eq!(
            zlib::compress(input.as_bytes()).unwrap(),
            fresh(input.as_bytes())
        );
    }
}

#[test]
fn compresses_only_when_python_would() {
    let tokens = serializer(&["k"]);
    let long = json!("a".repeat(200));
    let token = tokens.sign(&long, 9);
    assert!(token.starts_with('.'), "{token}");
    assert_eq!(tokens.verify(&token, None, 0).unwrap().payload, long);
    assert!(!tokens.sign(&json!("short"), 9).starts_with('.'));
}

#[test]
fn floats_are_written_like_python_repr() {
    // Python: json.dumps(x, ensure_ascii=False, separators=(",", ":")).
    let cases: &[(f64, &str)] = &[
        (1e16, "1e+16"),
        (0.00001, "1e-05"),
        (0.0001, "0.0001"),
        (123.0, "123.0"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (1.5, "1.5"),
        (0.5, "0.5"),
        (100.0, "100.0"),
        (1e100, "1e+100"),
        (1e-100, "1e-100"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e15, "1000000000000000.0"),
        (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
        (1e22, "1e+22"),
        (1e21, "1e+21"),
        (12345.678e-10, "1.2345678e-06"),
        (-1.5e-7, "-1.5e-07"),
        (9_007_199_254_740_992.0, "9007199254740992.0"),
        (1.2345e16, "1.2345e+16"),
    ];
    for &(float, want) in cases {
        assert_eq!(python_json(&json!(float)), want, "{float:e}");
    }
    assert_eq!(
        python_json(&json!([1, -2, u64::MAX, i64::MIN, 2.0])),
        "[1,-2,18446744073709551615,-9223372036854775808,2.0]"
    );
}

#[test]
fn json_is_read_like_python() {
    // Accepted by Python's json.loads, with the value it returns.
    let ok: &[(&str, Value)] = &[
        ("{\"a\":1,\"a\":2}", json!({"a": 2})),
        (" [1, 2 ,3 ] ", json!([1, 2, 3])),
        ("\"\\ud83c\\udf89\"", json!("🎉")),
        ("1E5", json!(100000.0)),
        ("1e-7", json!(1e-7)),
        (
            "\"\\u00e9\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
            json!("é/\u{8}\u{c}\n\r\t\"\\"),
        ),
        ("\t{ } \n", json!({})),
        ("[]", json!([])),
        ("\"\u{7f}é\"", json!("\u{7f}é")),
        (
            "[true,false,null,-12,18446744073709551615,-9223372036854775808]",
            json!([true, false, null, -12, u64::MAX, i64::MIN]),
        ),
    ];
    for (text, want) in ok {
        assert_eq!(json::parse(text).as_ref(), Some(want), "{text:?}");
    }
    // A repeated key keeps its first position, as in a Python dict.
    let order = json::parse("{\"b\":1,\"a\":2,\"b\":3}").unwrap();
    assert_eq!(
        order.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(order["b"], json!(3));
    // Floats are correctly rounded (serde_json's default parser, without its `float_roundtrip`
    // feature, is off by one ulp here).
    let float: f64 = "0.00039000000000000005".parse().unwrap();
    assert_eq!(
        json::parse("0.00039000000000000005")
            .unwrap()
            .as_f64()
            .unwrap()
            .to_bits(),
        float.to_bits()
    );
    assert!(
        json::parse("-0.0")
            .unwrap()
            .as_f64()
            .unwrap()
            .is_sign_negative()
    );

    // Refused by Python too.
    let refused = [
        "{\"a\":1,}",
        "[1,]",
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "-",
        "\"\u{1}\"",
        "\"\\u12\"",
        "\"\\uZZZZ\"",
        "\"\\u+123\"",
        "'a'",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "tru",
        "nulll",
        "\"abc",
        "\u{feff}1",
        "",
        "1 2",
        "\"\\x\"",
        "[",
        "{\"a\":1",
        "\u{c}1",
        "\"é\\",
    ];
    for text in refused {
        assert_eq!(json::parse(text), None, "{text:?}");
    }
    // Accepted by Python but not representable (or too deep) here.
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    for text in [
        "NaN",
        "Infinity",
        "-Infinity",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "1e400",
        &deep,
    ] {
        assert_eq!(json::parse(text), None, "{text:?}");
    }
    // Accepted by Python as integers, read here as the nearest float (listed in the module
    // docs): `-0`, and integers outside the 64-bit ranges.
    for (text, float) in [
        ("-0", -0.0),
        ("18446744073709551616", 18_446_744_073_709_551_616.0),
        ("-9223372036854775809", -9_223_372_036_854_775_809.0),
    ] {
        let read = json::parse(text).unwrap();
        assert!(read.is_f64(), "{text:?}");
        assert_eq!(
            read.as_f64().unwrap().to_bits(),
            f64::to_bits(float),
            "{text:?}"
        );
    }
    let deepest = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert!(json::parse(&deepest).is_some());
}

#[test]
fn json_is_compact_with_python_string_escapes() {
    let text: String = (0u8..0x20)
        .map(char::from)
        .chain("\u{7f}\"\\/ é日本🎉\u{2028}\u{2029}\u{feff}</script>".chars())
        .collect();
    // Python's output for the same string.
    let want = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\u{7f}\\\"\\\\/ é日本🎉\u{2028}\u{2029}\u{feff}</script>\"";
    assert_eq!(python_json(&json!(text)), want);
    assert_eq!(
        python_json(&json!(text)),
        serde_json::to_string(&text).unwrap()
    );
    assert_eq!(
        python_json(&json!({"a": [1, -2, true, false, null, {"x": "y"}], "é": 1.0})),
        "{\"a\":[1,-2,true,false,null,{\"x\":\"y\"}],\"é\":1.0}"
    );
    let tokens = serializer(&["k"]);
    let token = tokens.sign(&json!(text), 3);
    assert_eq!(tokens.verify(&token, None, 0).unwrap().payload, json!(text));
}

#[test]
fn debug_does_not_show_keys() {
    let tokens = TimedSerializer::new(&["super-secret-key", "older-secret"], "my-salt").unwrap();
    let debug = format!("{tokens:?}");
    assert_eq!(debug, "TimedSerializer { keys: 2, salt: \"my-salt\" }");
}

#[test]
fn error_codes() {
    assert_eq!(TokenError::Expired.code(), "expired");
    assert_eq!(TokenError::BadSignature.code(), "bad-signature");
    assert_eq!(TokenError::Malformed.code(), "malformed");
    for error in [
        TokenError::Expired,
        TokenError::BadSignature,
        TokenError::Malformed,
    ] {
        assert_eq!(error.to_string(), error.code());
    }
}
