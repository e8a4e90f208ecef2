//! Topic and channel names: `^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1..=64 bytes (spec §6.1).
//!
//! A validated name is stored inline so that commands carry it without allocating.

use std::fmt;

/// Longest valid topic or channel name, `#ephemeral` included.
pub const NAME_LEN_MAX: usize = 64;
const EPHEMERAL_SUFFIX: &[u8] = b"#ephemeral";

/// A valid topic or channel name, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    len: u8,
    bytes: [u8; NAME_LEN_MAX],
}

impl Name {
    /// Validates and stores `raw`; `None` when it breaks nsqd's naming rule.
    pub fn new(raw: &[u8]) -> Option<Name> {
        if !is_valid(raw) {
            return None;
        }
        let mut bytes = [0u8; NAME_LEN_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Name {
            len: raw.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII passes validation.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn is_ephemeral(&self) -> bool {
        self.as_bytes().ends_with(EPHEMERAL_SUFFIX)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// nsqd's `protocol.IsValidTopicName` / `IsValidChannelName` (identical rules).
pub fn is_valid(raw: &[u8]) -> bool {
    if raw.is_empty() || raw.len() > NAME_LEN_MAX {
        return false;
    }
    let stem = raw.strip_suffix(EPHEMERAL_SUFFIX).unwrap_or(raw);
    !stem.is_empty()
        && stem
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_nsqd() {
        for ok in [
            "test",
            "test-with_period.",
            "test#ephemeral",
            "a",
            &"x".repeat(64),
        ] {
            assert!(is_valid(ok.as_bytes()), "{ok}");
        }
        let long_eph = format!("{}#ephemeral", "x".repeat(54));
        assert!(is_valid(long_eph.as_bytes()));
        for bad in [
            "",
            "test:ephemeral",
            "#ephemeral",
            "a b",
            "a#ephemeral#ephemeral",
            &"x".repeat(65),
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad}");
        }
        assert!(Name::new(b"t#ephemeral").unwrap().is_ephemeral());
        assert!(!Name::new(b"t").unwrap().is_ephemeral());
    }
}
