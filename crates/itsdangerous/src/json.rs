//! The payload's JSON as Python's `json` module writes and reads it.

use serde_json::Value;

/// The deepest nesting of arrays and objects accepted in a payload: what `serde_json`'s
/// recursion limit (128) lets through. (Python's limit is its own recursion limit, about 1000
/// levels.)
pub const MAX_JSON_DEPTH: usize = 127;

/// Python's `json.loads(text)` into a [`Value`], through `serde_json`: `None` for invalid JSON
/// and for what a `Value` cannot hold (see the module docs of [`super`]).
pub(super) fn parse(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`: the exact bytes Python
/// itsdangerous puts in a token for this value (and how `server token verify` prints payloads).
pub fn python_json(value: &Value) -> String {
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
