//! itsdangerous-compatible signed, timestamped tokens.
//!
//! [`TimedSerializer`] is a hand-written, byte-compatible implementation of Python
//! itsdangerous 2.x `URLSafeTimedSerializer` with its defaults (JSON serializer, HMAC-SHA1,
//! `django-concat` key derivation, `.` separator). A token made here is accepted by
//! `URLSafeTimedSerializer(secret_keys, salt=salt).loads(token, max_age=...)`, and a token
//! made by Python is accepted here.
//!
//! # Format
//!
//! ```text
//! token     = value "." signature
//! value     = payload "." timestamp
//! payload   = b64(json)            when zlib does not save at least 2 bytes
//!           | "." b64(zlib(json))  otherwise
//! timestamp = b64(big-endian u64 with leading zero bytes stripped; 0 is empty)
//! signature = b64(HMAC-SHA1(key = SHA1(salt ++ "signer" ++ secret_key), value))
//! b64       = URL-safe base64 (`-`, `_`) without `=` padding
//! ```
//!
//! `json` is what Python's `json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`
//! writes, encoded as UTF-8: compact, non-ASCII characters kept as they are, control
//! characters escaped, and floats written like Python's `repr(float)` (`1e+16`, `1e-05`,
//! `123.0`, `-0.0`), which is where it differs from `serde_json`. zlib is level 6 (Python's
//! `zlib.compress` default).
//!
//! Several secret keys can be given, oldest first: the newest (last) one signs, and every one
//! verifies, tried newest first. That is itsdangerous' key rotation.
//!
//! # Verification
//!
//! [`TimedSerializer::verify`] follows Python's control flow so that every token gets the
//! same verdict:
//!
//! 1. split the token at its last `.` into value and signature (no `.`: bad signature);
//! 2. decode the signature with Python's lenient base64 (see below) and compare it in
//!    constant time with the HMAC of the raw value under each key (no match: bad signature);
//! 3. split the value at its last `.` into payload and timestamp; a missing or undecodable
//!    timestamp, or one longer than 8 bytes, is a bad signature too (Python's
//!    `BadTimeSignature`);
//! 4. with a `max_age`, a token older than `max_age` seconds, or one from the future, is
//!    expired (Python's `SignatureExpired`);
//! 5. only then is the payload decoded; if that fails, the token is malformed (Python's
//!    `BadPayload`).
//!
//! Python decodes base64 leniently (`base64.urlsafe_b64decode` after padding with `=` to a
//! multiple of 4, i.e. CPython's non-strict `binascii.a2b_base64`): characters outside the
//! alphabet are skipped, `+` and `/` are accepted as well as `-` and `_`, unused low bits of
//! the last character are ignored and a complete padding sequence ends the input. So several
//! spellings of one signature verify (`...gp8`, `...gp9`, `...gp8=`); this module accepts
//! exactly the same spellings, since a stricter check would reject links Python accepts.
//!
//! # Known differences from Python
//!
//! Only tokens with a valid signature, i.e. made by a holder of the key, can reach these:
//!
//! - a timestamp after the year 9999 makes Python raise `ValueError` or `OverflowError`
//!   from `datetime.fromtimestamp`; here such a token verifies (or expires) normally;
//! - payload JSON is read like Python's `json.loads`, by a small parser here (`serde_json`'s
//!   default float parsing is not always correctly rounded), except for what a
//!   [`serde_json::Value`] cannot hold or this module refuses: `NaN`, `Infinity`, numbers
//!   that overflow to infinity, lone surrogate escapes (`"\ud800"`), integers outside the
//!   `i64`/`u64` range and nesting deeper than [`MAX_JSON_DEPTH`] levels are malformed here
//!   but accepted by Python;
//! - a zlib payload that inflates to more than [`MAX_PAYLOAD_LEN`] bytes is malformed here
//!   (protection against zip bombs); Python has no limit.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// The largest JSON payload, in bytes, that a compressed token may inflate to.
///
/// Real tokens carry an email address; this bound only stops a hostile zlib stream from
/// inflating without limit.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// The deepest nesting of arrays and objects accepted in a payload. (Python's limit is its
/// recursion limit, about 1000 levels.)
pub const MAX_JSON_DEPTH: usize = 512;

/// Verified token contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<T> {
    /// The signed payload.
    pub payload: T,
    /// When the token was signed: Unix seconds, as written in the token.
    pub issued_at: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature is valid but the token is older than `max_age`, or it was signed in the
    /// future (only checked when a `max_age` is given). Python's `SignatureExpired`.
    #[error("expired")]
    Expired,
    /// No `.`, a signature that does not match any key or cannot be decoded, or a missing or
    /// malformed timestamp. Python's `BadSignature` / `BadTimeSignature`.
    #[error("bad-signature")]
    BadSignature,
    /// The signature is valid but the payload cannot be decoded (base64, zlib, UTF-8, JSON),
    /// or, for [`ConfirmationTokens`], is not a JSON string. Python's `BadPayload`.
    #[error("malformed")]
    Malformed,
}

impl TokenError {
    /// A stable machine-readable name: `"expired"`, `"bad-signature"` or `"malformed"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::BadSignature => "bad-signature",
            Self::Malformed => "malformed",
        }
    }
}

/// An empty list of secret keys was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at least one secret key is required")]
pub struct NoSecretKey;

/// Signs JSON values into URL-safe timestamped tokens and verifies them, byte-compatible with
/// Python itsdangerous' `URLSafeTimedSerializer(secret_keys, salt=salt)`.
///
/// It never reads the clock: the caller passes the signing time and the current time.
#[derive(Clone)]
pub struct TimedSerializer {
    /// The keyed HMAC of the newest secret key, which signs.
    signer: HmacSha1,
    /// One keyed HMAC per secret key, newest first: the order in which they are tried.
    verifiers: Vec<HmacSha1>,
    salt: String,
}

impl TimedSerializer {
    /// A serializer for `salt` with the given secret keys, oldest first. The last (newest) key
    /// signs; all of them verify.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K], salt: &str) -> Result<Self, NoSecretKey> {
        let newest = secret_keys.last().ok_or(NoSecretKey)?;
        let verifiers = secret_keys
            .iter()
            .rev()
            .map(|secret| keyed_mac(salt.as_bytes(), secret.as_ref()))
            .collect();
        Ok(Self {
            signer: keyed_mac(salt.as_bytes(), newest.as_ref()),
            verifiers,
            salt: salt.to_owned(),
        })
    }

    /// Signs `payload` as issued at `timestamp` (Unix seconds) with the newest key.
    pub fn sign(&self, payload: &Value, timestamp: u64) -> String {
        let json = dump_json(payload);
        let mut token = match compress(json.as_bytes()) {
            Some(compressed) if compressed.len() + 1 < json.len() => {
                format!(".{}", URL_SAFE_NO_PAD.encode(compressed))
            }
            _ => URL_SAFE_NO_PAD.encode(json.as_bytes()),
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(timestamp_bytes(timestamp)));
        let signature = self
            .signer
            .clone()
            .chain_update(token.as_bytes())
            .finalize()
            .into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// Verifies `token` and returns its payload and signing time.
    ///
    /// With `max_age`, the token must have been signed at most `max_age` seconds before `now`
    /// (Unix seconds) and not after it; with `None` its age is not checked.
    pub fn verify(
        &self,
        token: &str,
        max_age: Option<u64>,
        now: i64,
    ) -> Result<Verified<Value>, TokenError> {
        let (value, signature) = rsplit_dot(token.as_bytes()).ok_or(TokenError::BadSignature)?;
        let signature = lenient_b64decode(signature).ok_or(TokenError::BadSignature)?;
        let genuine = self.verifiers.iter().any(|mac| {
            mac.clone()
                .chain_update(value)
                .verify_slice(&signature)
                .is_ok()
        });
        if !genuine {
            return Err(TokenError::BadSignature);
        }

        let (payload, timestamp) = rsplit_dot(value).ok_or(TokenError::BadSignature)?;
        let issued_at = decode_timestamp(timestamp).ok_or(TokenError::BadSignature)?;
        if let Some(max_age) = max_age {
            let age = i128::from(now) - i128::from(issued_at);
            if age > i128::from(max_age) || age < 0 {
                return Err(TokenError::Expired);
            }
        }

        let payload = load_payload(payload).ok_or(TokenError::Malformed)?;
        Ok(Verified { payload, issued_at })
    }
}

/// Shows the number of keys and the salt, never the keys.
impl fmt::Debug for TimedSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedSerializer")
            .field("keys", &self.verifiers.len())
            .field("salt", &self.salt)
            .finish()
    }
}

/// The tutorial's confirmation links: the payload is the email address as a JSON string and
/// the salt is [`ConfirmationTokens::SALT`], so Flask's
/// `URLSafeTimedSerializer(SECRET_KEY).loads(token, salt="email-confirm-salt", max_age=3600)`
/// reads them and vice versa.
#[derive(Debug, Clone)]
pub struct ConfirmationTokens {
    serializer: TimedSerializer,
}

impl ConfirmationTokens {
    /// The salt of the tutorial's confirmation tokens.
    pub const SALT: &'static str = "email-confirm-salt";

    /// Confirmation tokens with the given secret keys, oldest first; the last one signs.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        Ok(Self {
            serializer: TimedSerializer::new(secret_keys, Self::SALT)?,
        })
    }

    /// A confirmation token for `email`, issued at `now_unix` (a negative time counts as 0).
    pub fn issue(&self, email: &crate::EmailAddress, now_unix: i64) -> String {
        let timestamp = u64::try_from(now_unix).unwrap_or(0);
        self.serializer
            .sign(&Value::String(email.as_str().to_owned()), timestamp)
    }

    /// Verifies a confirmation token and returns the email address it was issued for, as
    /// signed (it is not re-parsed here). A payload that is not a JSON string is
    /// [`TokenError::Malformed`].
    pub fn check(
        &self,
        token: &str,
        max_age: Option<u64>,
        now_unix: i64,
    ) -> Result<Verified<String>, TokenError> {
        let Verified { payload, issued_at } = self.serializer.verify(token, max_age, now_unix)?;
        match payload {
            Value::String(email) => Ok(Verified {
                payload: email,
                issued_at,
            }),
            _ => Err(TokenError::Malformed),
        }
    }
}

/// HMAC-SHA1 keyed with itsdangerous' `django-concat` derivation:
/// `SHA1(salt ++ b"signer" ++ secret)`.
fn keyed_mac(salt: &[u8], secret: &[u8]) -> HmacSha1 {
    let derived = Sha1::new()
        .chain_update(salt)
        .chain_update(b"signer")
        .chain_update(secret)
        .finalize();
    // HMAC zero-pads keys shorter than the hash block to the block size, so a block-sized key
    // holding the 20 derived bytes followed by zeros is the same key, with an infallible
    // constructor.
    let mut key = hmac::digest::Key::<HmacSha1>::default();
    key.iter_mut()
        .zip(derived.iter())
        .for_each(|(k, d)| *k = *d);
    <HmacSha1 as KeyInit>::new(&key)
}

/// Splits at the last `.`, like Python's `bytes.rsplit(b".", 1)`.
fn rsplit_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = bytes.iter().rposition(|&b| b == b'.')?;
    Some((&bytes[..dot], &bytes[dot + 1..]))
}

/// itsdangerous' `int_to_bytes`: big-endian, leading zero bytes stripped.
fn timestamp_bytes(timestamp: u64) -> Vec<u8> {
    let bytes = timestamp.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// itsdangerous' `bytes_to_int(base64_decode(..))`: at most 8 big-endian bytes.
fn decode_timestamp(encoded: &[u8]) -> Option<u64> {
    let bytes = lenient_b64decode(encoded)?;
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The payload half of `URLSafeSerializerMixin.load_payload`: optional zlib, then JSON.
fn load_payload(payload: &[u8]) -> Option<Value> {
    let (compressed, encoded) = match payload.strip_prefix(b".") {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let mut json = lenient_b64decode(encoded)?;
    if compressed {
        json = inflate(&json, MAX_PAYLOAD_LEN)?;
    }
    let text = std::str::from_utf8(&json).ok()?;
    parse_json(text)
}

/// Python's `json.loads(text)` (strict mode) into a [`Value`]: whitespace is `[ \t\n\r]`,
/// control characters must be escaped in strings, duplicate keys keep their first position
/// and last value, integers stay integers and other numbers are correctly rounded to `f64`.
/// `None` for invalid JSON and for what a `Value` cannot hold (see the module docs).
fn parse_json(text: &str) -> Option<Value> {
    let mut parser = JsonParser { text, pos: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    (parser.pos == text.len()).then_some(value)
}

/// A recursive-descent JSON reader; `pos` is always on a character boundary.
struct JsonParser<'a> {
    text: &'a str,
    pos: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn skip_digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'{' | b'[' if depth >= MAX_JSON_DEPTH => None,
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        rest.starts_with(word.as_bytes()).then(|| {
            self.pos += word.len();
            value
        })
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '{'
        let mut members = serde_json::Map::new();
        self.skip_whitespace();
        if self.eat(b'}') {
            return Some(Value::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return None;
            }
            let key = self.string()?;
            self.skip_whitespace();
            if !self.eat(b':') {
                return None;
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            // Like a Python dict: a repeated key keeps its place and takes the last value.
            members.insert(key, value);
            self.skip_whitespace();
            if self.eat(b'}') {
                return Some(Value::Object(members));
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_whitespace();
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.eat(b']') {
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_whitespace();
            if self.eat(b']') {
                return Some(Value::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_whitespace();
        }
    }

    fn string(&mut self) -> Option<String> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let rest = self.text.get(self.pos..)?;
            let end = rest.find(|c: char| c == '"' || c == '\\' || c < '\u{20}')?;
            out.push_str(rest.get(..end)?);
            self.pos += end;
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                _ => return None, // an unescaped control character
            }
        }
    }

    fn escape(&mut self) -> Option<char> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let code = self.hex4()?;
                if (0xd800..0xdc00).contains(&code) {
                    // A high surrogate must be followed by an escaped low one; Python would
                    // keep a lone surrogate, which a Rust string cannot hold.
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return None;
                    }
                    let low = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00))?
                } else {
                    char::from_u32(code)? // `None` for a lone low surrogate
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.as_bytes().get(self.pos..self.pos + 4)?;
        let code = digits
            .iter()
            .try_fold(0u32, |acc, &b| Some(acc * 16 + char::from(b).to_digit(16)?))?;
        self.pos += 4;
        Some(code)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, an integer without fraction and
    /// exponent.
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        self.eat(b'-');
        if !self.eat(b'0') && self.skip_digits() == 0 {
            return None;
        }
        let mut float = false;
        if self.peek() == Some(b'.')
            && self
                .text
                .as_bytes()
                .get(self.pos + 1)
                .is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            self.skip_digits();
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let mark = self.pos;
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.skip_digits() > 0 {
                float = true;
            } else {
                self.pos = mark; // not an exponent; the caller will refuse the `e`
            }
        }
        let literal = self.text.get(start..self.pos)?;
        if float {
            // Rust's parser is correctly rounded, like Python's `float()`.
            serde_json::Number::from_f64(literal.parse().ok()?).map(Value::Number)
        } else if let Ok(unsigned) = literal.parse::<u64>() {
            Some(Value::from(unsigned))
        } else {
            literal.parse::<i64>().ok().map(Value::from)
        }
    }
}

/// Python's `zlib.compress(data)` (level 6, zlib header). `None` only if zlib fails, which it
/// does not for an in-memory buffer; the caller then sends the payload uncompressed.
///
/// Every call tries it (that is how Python decides), so the deflate state (about 260 KiB) is
/// kept per thread and reset between calls: allocating it afresh for each token cost more than
/// the rest of signing. A reset stream produces exactly the bytes a new one would.
fn compress(data: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(Compression::new(6), true));
    }
    DEFLATE.with(|deflate| {
        let mut deflate = deflate.try_borrow_mut().ok()?;
        deflate.reset();
        let mut out = Vec::with_capacity(data.len() + 64);
        loop {
            let consumed = usize::try_from(deflate.total_in()).ok()?;
            let status = deflate
                .compress_vec(
                    data.get(consumed..)?,
                    &mut out,
                    flate2::FlushCompress::Finish,
                )
                .ok()?;
            if status == Status::StreamEnd {
                return Some(out);
            }
            out.reserve(out.capacity().max(64));
        }
    })
}

/// Python's `zlib.decompress(data)`: one complete zlib stream (trailing bytes after its end
/// are ignored, as Python does), but refusing to produce more than `limit` bytes.
fn inflate(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let input = data
            .get(usize::try_from(in_before).ok()?..)
            .unwrap_or_default();
        let status = inflater
            .decompress(input, &mut chunk, FlushDecompress::None)
            .ok()?;
        let produced = usize::try_from(inflater.total_out() - out_before).ok()?;
        out.extend_from_slice(chunk.get(..produced)?);
        if out.len() > limit {
            return None;
        }
        match status {
            Status::StreamEnd => return Some(out),
            // No progress at all: the stream is truncated.
            Status::Ok | Status::BufError if inflater.total_in() == in_before && produced == 0 => {
                return None;
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// itsdangerous' `base64_decode`: pad with `=` to a multiple of 4 (counting every input byte),
/// then decode like CPython's non-strict `binascii.a2b_base64` over the URL-safe alphabet.
///
/// - bytes outside `A-Z a-z 0-9 + / - _` and `=` are skipped;
/// - `=` seen with at least 2 characters of the current quad ends the input once the quad
///   plus the `=` run reaches 4 (a data character resets the run); other `=` are skipped;
/// - unused low bits of the last character are dropped;
/// - a quad left with 1 character is an error, one left with 2 or 3 is "Incorrect padding".
fn lenient_b64decode(input: &[u8]) -> Option<Vec<u8>> {
    let padding = (4 - input.len() % 4) % 4;
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut quad_pos = 0u8;
    let mut left = 0u8;
    let mut pads = 0usize;
    for &byte in input.iter().chain(std::iter::repeat_n(&b'=', padding)) {
        if byte == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if usize::from(quad_pos) + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let Some(sextet) = b64_value(byte) else {
            continue;
        };
        pads = 0;
        match quad_pos {
            0 => {
                left = sextet;
                quad_pos = 1;
            }
            1 => {
                out.push((left << 2) | (sextet >> 4));
                left = sextet & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push((left << 4) | (sextet >> 2));
                left = sextet & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push((left << 6) | sextet);
                left = 0;
                quad_pos = 0;
            }
        }
    }
    (quad_pos == 0).then_some(out)
}

/// The 6-bit value of a base64 character, accepting both the standard and URL-safe alphabets.
fn b64_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`: the exact bytes Python
/// itsdangerous puts in a token for this value (and how `server token verify` prints payloads).
pub fn python_json(value: &Value) -> String {
    dump_json(value)
}

fn dump_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => write_py_float(out, float),
            _ => out.push_str(&number.to_string()),
        },
        Value::String(string) => write_json_string(out, string),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `json` string escaping with `ensure_ascii=False`: `"` and `\`, the short escapes
/// `\b \f \n \r \t`, other characters below U+0020 as `\u00xx`; everything else as is.
/// (`serde_json` escapes exactly the same way.)
fn write_json_string(out: &mut String, string: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in string.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\0'..='\u{1f}' => {
                let code = c as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in `-4..16` (always with a fractional part, `123.0`), otherwise as
/// `d.ddde+XX` / `d.ddde-XX` with at least two exponent digits.
fn write_py_float(out: &mut String, float: f64) {
    if float.is_nan() {
        out.push_str("NaN");
        return;
    }
    if float.is_infinite() {
        out.push_str(if float > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if float.is_sign_negative() {
        out.push('-');
    }
    if float == 0.0 {
        out.push_str("0.0");
        return;
    }
    // Rust's `{:e}` also prints the shortest round-trip digits: `1.2345e-5`, `1e16`.
    let scientific = format!("{:e}", float.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (first, rest) = digits.split_at(1);

    if !(-4..16).contains(&exponent) {
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        ));
    } else if exponent >= 0 {
        // `exponent` is in 0..16 here, and `digits` has at most 17 digits.
        let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
        if digits.len() > int_len {
            let (int_part, frac_part) = digits.split_at(int_len);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-exponent - 1).unwrap_or(0),
        ));
        out.push_str(&digits);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const README_TOKEN: &str = "InRlc3RAdGVzdC5jb20i.ZVPxAA.csFMigfTbSNDX2OTE_5JJyR5gp8";

    fn serializer(keys: &[&str]) -> TimedSerializer {
        TimedSerializer::new(keys, ConfirmationTokens::SALT).unwrap()
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
        assert_eq!(
            sign_raw("my_precious", ConfirmationTokens::SALT, value),
            README_TOKEN
        );
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
        assert_eq!(ConfirmationTokens::new(&none).unwrap_err(), NoSecretKey);
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
        let truncated = compress(b"\"hello hello hello hello\"").unwrap();
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
            let token = sign_raw("k", ConfirmationTokens::SALT, &format!("{payload}.{ts}"));
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
            let token = sign_raw("k", ConfirmationTokens::SALT, &value);
            assert_eq!(
                tokens.verify(&token, None, 0),
                Err(TokenError::BadSignature),
                "{token}"
            );
        }
        // Eight bytes with a leading zero still fit, as do extra unused characters.
        let token = sign_raw(
            "k",
            ConfirmationTokens::SALT,
            &format!("{payload}.{}", b64(&[0, 0, 0, 0, 0, 0, 1, 2])),
        );
        assert_eq!(tokens.verify(&token, None, 0).unwrap().issued_at, 258);
        let token = sign_raw("k", ConfirmationTokens::SALT, &format!("{payload}.AQI!!"));
        assert_eq!(tokens.verify(&token, None, 0).unwrap().issued_at, 258);
        // ...but not when they leave the padding short (Python: "Incorrect padding").
        let token = sign_raw("k", ConfirmationTokens::SALT, &format!("{payload}.AQI!"));
        assert_eq!(
            tokens.verify(&token, None, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn trailing_bytes_after_the_zlib_stream_are_ignored_like_python() {
        let tokens = serializer(&["k"]);
        let mut stream = compress(b"[\"x\",\"x\",\"x\"]").unwrap();
        stream.extend_from_slice(b"garbage");
        let token = sign_raw(
            "k",
            ConfirmationTokens::SALT,
            &format!(".{}.{}", b64(&stream), b64(&[7])),
        );
        assert_eq!(
            tokens.verify(&token, None, 0).unwrap().payload,
            json!(["x", "x", "x"])
        );
    }

    #[test]
    fn zlib_bomb_is_malformed() {
        let tokens = serializer(&["k"]);
        let sign_json = |json: &[u8]| {
            let value = format!(".{}.{}", b64(&compress(json).unwrap()), b64(&[1]));
            sign_raw("k", ConfirmationTokens::SALT, &value)
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
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
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
            assert_eq!(compress(input.as_bytes()).unwrap(), fresh(input.as_bytes()));
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
            assert_eq!(dump_json(&json!(float)), want, "{float:e}");
        }
        assert_eq!(
            dump_json(&json!([1, -2, u64::MAX, i64::MIN, 2.0])),
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
            ("-0", json!(0)),
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
            assert_eq!(parse_json(text).as_ref(), Some(want), "{text:?}");
        }
        // A repeated key keeps its first position, as in a Python dict.
        let order = parse_json("{\"b\":1,\"a\":2,\"b\":3}").unwrap();
        assert_eq!(
            order.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(order["b"], json!(3));
        // Floats are correctly rounded (serde_json's default parser is off by one ulp here).
        let float: f64 = "0.00039000000000000005".parse().unwrap();
        assert_eq!(
            parse_json("0.00039000000000000005")
                .unwrap()
                .as_f64()
                .unwrap()
                .to_bits(),
            float.to_bits()
        );
        assert!(
            parse_json("-0.0")
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
            assert_eq!(parse_json(text), None, "{text:?}");
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
            "18446744073709551616",
            "-9223372036854775809",
            &deep,
        ] {
            assert_eq!(parse_json(text), None, "{text:?}");
        }
        let deepest = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_json(&deepest).is_some());
    }

    #[test]
    fn json_is_compact_with_python_string_escapes() {
        let text: String = (0u8..0x20)
            .map(char::from)
            .chain("\u{7f}\"\\/ é日本🎉\u{2028}\u{2029}\u{feff}</script>".chars())
            .collect();
        // Python's output for the same string.
        let want = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\u{7f}\\\"\\\\/ é日本🎉\u{2028}\u{2029}\u{feff}</script>\"";
        assert_eq!(dump_json(&json!(text)), want);
        assert_eq!(
            dump_json(&json!(text)),
            serde_json::to_string(&text).unwrap()
        );
        assert_eq!(
            dump_json(&json!({"a": [1, -2, true, false, null, {"x": "y"}], "é": 1.0})),
            "{\"a\":[1,-2,true,false,null,{\"x\":\"y\"}],\"é\":1.0}"
        );
        let tokens = serializer(&["k"]);
        let token = tokens.sign(&json!(text), 3);
        assert_eq!(tokens.verify(&token, None, 0).unwrap().payload, json!(text));
    }

    #[test]
    fn debug_does_not_show_keys() {
        let tokens =
            TimedSerializer::new(&["super-secret-key", "older-secret"], "my-salt").unwrap();
        let debug = format!("{tokens:?}");
        assert_eq!(debug, "TimedSerializer { keys: 2, salt: \"my-salt\" }");
        let confirm = format!(
            "{:?}",
            ConfirmationTokens::new(&["super-secret-key"]).unwrap()
        );
        assert!(!confirm.contains("super-secret"), "{confirm}");
        assert!(confirm.contains("keys: 1"), "{confirm}");
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

    #[test]
    fn confirmation_tokens() {
        let tokens = ConfirmationTokens::new(&["my_precious"]).unwrap();
        let email = crate::EmailAddress::parse("test@test.com").unwrap();
        let token = tokens.issue(&email, 1_700_000_000);
        assert_eq!(token, README_TOKEN);
        let verified = tokens.check(&token, Some(3600), 1_700_003_600).unwrap();
        assert_eq!(
            verified,
            Verified {
                payload: "test@test.com".to_owned(),
                issued_at: 1_700_000_000
            }
        );
        assert_eq!(
            tokens.check(&token, Some(3600), 1_700_003_601),
            Err(TokenError::Expired)
        );
        // A negative time is signed as 0.
        let early = tokens.issue(&email, -40);
        assert_eq!(tokens.check(&early, None, 0).unwrap().issued_at, 0);
        // A validly signed payload that is not a string.
        let number = TimedSerializer::new(&["my_precious"], ConfirmationTokens::SALT)
            .unwrap()
            .sign(&json!(42), 5);
        assert_eq!(tokens.check(&number, None, 5), Err(TokenError::Malformed));
        assert_eq!(tokens.check("nope", None, 5), Err(TokenError::BadSignature));
        // Keys given as owned strings or bytes work too.
        let owned =
            ConfirmationTokens::new(&[String::from("old"), String::from("my_precious")]).unwrap();
        assert_eq!(owned.issue(&email, 1_700_000_000), README_TOKEN);
        let bytes = ConfirmationTokens::new(&[b"my_precious".to_vec()]).unwrap();
        assert!(bytes.check(README_TOKEN, None, 0).is_ok());
    }
}
