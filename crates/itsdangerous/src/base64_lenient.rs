//! Base64 as itsdangerous decodes it: leniently, like CPython's `binascii`.

/// itsdangerous' `base64_decode`: pad with `=` to a multiple of 4 (counting every input byte),
/// then decode like CPython's non-strict `binascii.a2b_base64` over the URL-safe alphabet.
///
/// - bytes outside `A-Z a-z 0-9 + / - _` and `=` are skipped;
/// - `=` seen with at least 2 characters of the current quad ends the input once the quad
///   plus the `=` run reaches 4 (a data character resets the run); other `=` are skipped;
/// - unused low bits of the last character are dropped;
/// - a quad left with 1 character is an error, one left with 2 or 3 is "Incorrect padding".
pub(super) fn lenient_b64decode(input: &[u8]) -> Option<Vec<u8>> {
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
