//! Round trips against the real Python itsdangerous.
//!
//! Runs only when `ITSDANGEROUS_PYTHON` names a Python interpreter with itsdangerous 2.x
//! installed, e.g. `ITSDANGEROUS_PYTHON=python3 cargo test -p itsdangerous-compat --test python_interop`.
//! If the variable is set but the interpreter or the module is missing, the test fails.
//!
//! About 200 generated payloads (awkward strings, long compressible strings around the
//! compression threshold, nested objects and arrays, integers, floats, booleans, null) with
//! varied keys, salts and timestamps go to one Python process, which signs each with
//! `URLSafeTimedSerializer` and verifies the token we made. Then:
//!
//! - Python and we make the same compression decision, and uncompressed tokens are
//!   byte-identical;
//! - the JSON inside both tokens is byte-identical (also for compressed tokens);
//! - Python verifies every token we make to the same payload and timestamp;
//! - we verify every token Python makes.

// Marks the helpers below as test code, so clippy's test allowances (unwrap, panic) apply.
#![cfg(test)]

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use itsdangerous_compat::{TimedSerializer, Verified};
use serde_json::{Map, Value, json};

const PYTHON_ENV: &str = "ITSDANGEROUS_PYTHON";

/// Reads a JSON list of cases on stdin, writes `{"version", "results"}` on stdout.
const SCRIPT: &str = r#"
import json, sys
from importlib.metadata import version
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

class Clock:
    now = 0

class FixedClockSigner(TimestampSigner):
    def get_timestamp(self):
        return Clock.now

def canonical(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

results = []
for case in json.loads(sys.stdin.buffer.read().decode("utf-8")):
    serializer = URLSafeTimedSerializer(case["keys"], salt=case["salt"], signer=FixedClockSigner)
    Clock.now = case["timestamp"]
    token = serializer.dumps(case["payload"])
    Clock.now = case["timestamp"] + 5
    try:
        payload, signed = serializer.loads(case["ours"], max_age=10, return_timestamp=True)
        verdict = {
            "same_payload": canonical(payload) == canonical(case["payload"]),
            "payload": canonical(payload),
            "issued_at": int(signed.timestamp()),
        }
    except Exception as error:
        verdict = {"err": f"{type(error).__name__}: {error}"}
    results.append({"token": token, "verdict": verdict})

sys.stdout.write(json.dumps({"version": version("itsdangerous"), "results": results}))
"#;

/// SplitMix64: a tiny deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn string(&mut self, max_len: usize) -> String {
        const POOL: &[char] = &[
            'a', 'b', 'z', 'A', 'Z', '0', '9', ' ', '@', '.', '-', '_', '+', '/', '=', '"', '\\',
            '\'', '<', '>', '&', '\0', '\u{1}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r',
            '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{a0}', 'é', 'ß', 'Ω', 'ж', '日', '本',
            '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffd}', '🎉', '𝄞',
        ];
        let len = self.below(max_len + 1);
        (0..len).map(|_| *self.pick(POOL)).collect()
    }

    fn float(&mut self) -> f64 {
        match self.below(4) {
            // Any finite bit pattern.
            0 => loop {
                let float = f64::from_bits(self.next());
                if float.is_finite() {
                    return float;
                }
            },
            // A short decimal at a random scale.
            1 => {
                let mantissa = f64::from(u32::try_from(self.next() % 100_000).unwrap()) - 50_000.0;
                let scale = i32::try_from(self.below(50)).unwrap() - 25;
                mantissa * 10f64.powi(scale)
            }
            // Around the fixed/scientific boundaries.
            2 => {
                let exponent = *self.pick(&[-6, -5, -4, -3, 14, 15, 16, 17]);
                (1.0 + self.below(1000) as f64 / 7.0) * 10f64.powi(exponent)
            }
            _ => self.next() as f64 / 3.0,
        }
    }

    fn scalar(&mut self) -> Value {
        match self.below(7) {
            0 => Value::Null,
            1 => Value::Bool(self.next().is_multiple_of(2)),
            2 => json!(self.next() as i64),
            3 => json!(self.below(1000)),
            4 => json!(self.float()),
            _ => Value::String(self.string(12)),
        }
    }

    fn nested(&mut self, depth: u32) -> Value {
        if depth == 0 || self.below(3) == 0 {
            return self.scalar();
        }
        let len = self.below(5);
        if self.next().is_multiple_of(2) {
            Value::Array((0..len).map(|_| self.nested(depth - 1)).collect())
        } else {
            let mut map = Map::new();
            for _ in 0..len {
                let key = self.string(6);
                let value = self.nested(depth - 1);
                map.insert(key, value);
            }
            Value::Object(map)
        }
    }
}

/// The generated payloads: fixed awkward values first, then random ones.
fn payloads(rng: &mut Rng) -> Vec<Value> {
    let control: String = (0u8..0x20).map(char::from).collect();
    let mut out = vec![
        json!(""),
        json!("test@test.com"),
        json!("Mixed.Case+tag@Example.ORG"),
        json!(control),
        json!("quote \" backslash \\ slash / apostrophe '"),
        json!("é日本🎉 \u{2028}\u{2029}\u{feff}\u{7f}\u{80}"),
        json!("</script><!--"),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!({}),
        json!({"nested": {"deeper": [1, 2.5, "three", null, [true]]}, "é": "ü"}),
    ];
    for float in [
        1e16,
        1e-5,
        1e-4,
        123.0,
        -0.0,
        0.0,
        1.5,
        1e100,
        1e-100,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        0.1,
        1e15,
        1e22,
        9_007_199_254_740_993.0,
        -1.5e-7,
    ] {
        out.push(json!(float));
    }
    // Repetitive strings of every length around the point where compression starts to pay.
    for n in 1..=40 {
        out.push(json!("ab".repeat(n)));
    }
    for n in [10, 20, 30, 50, 100, 1000, 5000] {
        let unit = rng.string(4);
        out.push(json!(format!("{}@example.com", unit.repeat(n))));
        out.push(json!(vec![unit.repeat(n / 10 + 1); 8]));
    }
    for _ in 0..40 {
        out.push(json!(rng.string(40)));
    }
    for _ in 0..30 {
        out.push(json!(rng.float()));
    }
    for _ in 0..50 {
        out.push(rng.nested(4));
    }
    out
}

struct Case {
    payload: Value,
    keys: Vec<String>,
    salt: String,
    timestamp: u64,
    ours: String,
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x1234_5678_9abc_def0);
    const KEYS: &[&str] = &[
        "my_precious",
        "",
        "ключ🔑",
        "old-key",
        "new-key",
        "a-much-longer-secret-key-of-more-than-sixty-four-bytes-0123456789-abcdef",
    ];
    const SALTS: &[&str] = &[
        "email-confirm-salt",
        "",
        "itsdangerous",
        "sälz",
        "password-reset-salt",
    ];
    const TIMESTAMPS: &[u64] = &[
        0,
        1,
        255,
        256,
        65_535,
        65_536,
        1_700_000_000,
        1 << 32,
        253_402_300_799,
    ];
    payloads(&mut rng)
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let keys: Vec<String> = (0..=rng.below(3))
                .map(|_| (*rng.pick(KEYS)).to_owned())
                .collect();
            let salt = if i % 5 == 4 {
                rng.string(8)
            } else {
                (*rng.pick(SALTS)).to_owned()
            };
            let timestamp = if i % 2 == 0 {
                *rng.pick(TIMESTAMPS)
            } else {
                rng.next() % 253_402_300_800
            };
            let ours = TimedSerializer::new(&keys, &salt)
                .unwrap()
                .sign(&payload, timestamp);
            Case {
                payload,
                keys,
                salt,
                timestamp,
                ours,
            }
        })
        .collect()
}

/// Runs the Python script on `input`, failing loudly if Python cannot be run.
fn run_python(python: &str, input: String) -> Value {
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON_ENV}={python:?} is set but cannot be run: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{python} failed ({status}); is itsdangerous installed?\n{stderr}"
    );
    writer.join().unwrap().unwrap();
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad output from {python}: {e}\n{stdout}\n{stderr}"))
}

/// The JSON text inside a token's payload part (inflated if compressed).
fn payload_json(token: &str) -> Vec<u8> {
    let part = token.split('.').find(|part| !part.is_empty()).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(part).unwrap();
    if token.starts_with('.') {
        let mut json = Vec::new();
        flate2::read::ZlibDecoder::new(raw.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        json
    } else {
        raw
    }
}

#[test]
fn tokens_interoperate_with_python_itsdangerous() {
    let Ok(python) = std::env::var(PYTHON_ENV) else {
        println!("note: {PYTHON_ENV} is not set; skipping the Python itsdangerous interop test");
        return;
    };
    let cases = cases();
    assert!(cases.len() >= 200, "{} cases", cases.len());

    let input: Vec<Value> = cases
        .iter()
        .map(|c| json!({"payload": c.payload, "keys": c.keys, "salt": c.salt, "timestamp": c.timestamp, "ours": c.ours}))
        .collect();
    let output = run_python(&python, Value::Array(input).to_string());
    let version = output["version"].as_str().unwrap();
    assert!(
        version.starts_with("2."),
        "itsdangerous {version}, expected 2.x"
    );
    let results = output["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    let (mut compressed, mut compressed_identical) = (0, 0);
    for (case, result) in cases.iter().zip(results) {
        let theirs = result["token"].as_str().unwrap();
        let ours = &case.ours;
        let label = format!(
            "payload {} keys {:?} salt {:?} ts {}",
            case.payload, case.keys, case.salt, case.timestamp
        );

        if ours.starts_with('.') != theirs.starts_with('.') {
            failures.push(format!(
                "{label}: compression differs: ours {ours}, python {theirs}"
            ));
        } else if theirs.starts_with('.') {
            compressed += 1;
            compressed_identical += usize::from(ours == theirs);
        } else if ours != theirs {
            failures.push(format!("{label}: ours {ours} != python {theirs}"));
        }
        let (our_json, their_json) = (payload_json(ours), payload_json(theirs));
        if our_json != their_json {
            failures.push(format!(
                "{label}: JSON differs: ours {} python {}",
                String::from_utf8_lossy(&our_json),
                String::from_utf8_lossy(&their_json)
            ));
        }

        let verdict = &result["verdict"];
        // Python compares the payload itself: parsing its answer with serde_json could round
        // floats differently.
        if verdict["same_payload"] != Value::Bool(true)
            || verdict["issued_at"].as_u64() != Some(case.timestamp)
        {
            failures.push(format!("{label}: python verified our {ours} as {verdict}"));
        }

        let now = i64::try_from(case.timestamp).unwrap() + 5;
        let mine = TimedSerializer::new(&case.keys, &case.salt)
            .unwrap()
            .verify(theirs, Some(10), now);
        let want = Ok(Verified {
            payload: case.payload.clone(),
            issued_at: case.timestamp,
        });
        if mine != want {
            failures.push(format!(
                "{label}: we verified python's {theirs} as {mine:?}"
            ));
        }
    }
    println!(
        "{} cases against itsdangerous {version}: {compressed} compressed ({compressed_identical} byte-identical), {} failures",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compressed >= 20, "only {compressed} compressed cases");
    assert!(
        compressed < cases.len() - 50,
        "{compressed} compressed cases"
    );
}
