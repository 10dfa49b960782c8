//! The id that ties together the log lines of one request and of the job it published.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A request id: 1 to [`RequestId::MAX_LEN`] characters of `[A-Za-z0-9._-]`, safe to log, to
/// echo in a header and to carry in a job. Stored inline so that it (and `queue::Job`) is `Copy`.
///
/// The web layer takes a well-formed `X-Request-Id` from the client or its proxy as is, or makes
/// one from a random UUID ([`RequestId::from_u128`]: 32 lower-case hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::MAX_LEN],
}

impl RequestId {
    /// The longest request id accepted.
    pub const MAX_LEN: usize = 64;

    /// The id if `text` is 1 to 64 characters of `[A-Za-z0-9._-]`, else `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let raw = text.as_bytes();
        if raw.is_empty()
            || raw.len() > Self::MAX_LEN
            || !raw
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return None;
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Self {
            len: u8::try_from(raw.len()).ok()?,
            bytes,
        })
    }

    /// The 32 lower-case hex digits of `value` (a UUID's "simple" form).
    pub fn from_u128(value: u128) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0; Self::MAX_LEN];
        for (i, byte) in bytes.iter_mut().take(32).enumerate() {
            let nibble = (value >> (4 * (31 - i))) & 0xf;
            *byte = HEX[nibble as usize];
        }
        Self { len: 32, bytes }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII ever goes in (see `parse` and `from_u128`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom("a request id is 1 to 64 characters of [A-Za-z0-9._-]")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_short_safe_ids_only() {
        for ok in ["a", "abc-123_X.y", &"z".repeat(64)] {
            assert_eq!(RequestId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            &"z".repeat(65),
            "has space",
            "new\nline",
            "a/b",
            "é",
            "x@y.com",
        ] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn from_u128_is_32_hex_digits() {
        let id = RequestId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id.as_str(), "0123456789abcdef0011223344556677");
        assert_eq!(RequestId::from_u128(0).as_str(), "0".repeat(32));
        assert_eq!(format!("{id}"), id.as_str());
        assert_eq!(
            format!("{:?}", RequestId::parse("r-1").unwrap()),
            "RequestId(\"r-1\")"
        );
    }

    #[test]
    fn serialises_as_a_string() {
        let id = RequestId::parse("req-7").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"req-7\"");
        assert_eq!(serde_json::from_str::<RequestId>("\"req-7\"").unwrap(), id);
        assert!(serde_json::from_str::<RequestId>("\"bad id\"").is_err());
    }
}
