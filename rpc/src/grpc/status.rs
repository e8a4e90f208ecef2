//! gRPC status codes and the trailers that carry them.

use http::{HeaderMap, HeaderValue};

/// The status codes of the gRPC specification, with their wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// How a call ended: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Status {
        Status::new(Code::Ok, "")
    }

    /// `grpc-status` and, when there is a message, the percent-encoded `grpc-message`.
    pub fn to_trailers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        self.add_to(&mut map);
        map
    }

    pub fn add_to(&self, map: &mut HeaderMap) {
        map.insert("grpc-status", HeaderValue::from(self.code as u8 as u16));
        if !self.message.is_empty() {
            let encoded = percent_encode(&self.message);
            if let Ok(v) = HeaderValue::from_str(&encoded) {
                map.insert("grpc-message", v);
            }
        }
    }
}

/// The `grpc-message` encoding: bytes outside 0x20..=0x7E, and `%` itself, become `%XX`.
pub fn percent_encode(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_percent_encoded() {
        assert_eq!(percent_encode("a b%c\n\u{e9}"), "a b%25c%0A%C3%A9");
        let t = Status::new(Code::NotFound, "no such topic: caf\u{e9}").to_trailers();
        assert_eq!(t["grpc-status"], "5");
        assert_eq!(t["grpc-message"], "no such topic: caf%C3%A9");
    }

    #[test]
    fn ok_has_status_and_no_message() {
        let t = Status::ok().to_trailers();
        assert_eq!(t["grpc-status"], "0");
        assert!(t.get("grpc-message").is_none());
    }
}
