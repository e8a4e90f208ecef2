//! Protocol errors carry their wire code and whether they end the connection, so closing follows
//! from the error value and never from the handler that raised it.

use std::fmt;

/// Every error code nsqd's V2 protocol can send (spec §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadProtocol,
    Invalid,
    BadBody,
    BadTopic,
    BadChannel,
    BadMessage,
    PubFailed,
    MpubFailed,
    DpubFailed,
    SubFailed,
    IdentifyFailed,
    AuthDisabled,
    AuthFailed,
    Unauthorized,
    AuthFirst,
    AuthError,
    FinFailed,
    ReqFailed,
    TouchFailed,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadProtocol => "E_BAD_PROTOCOL",
            ErrorCode::Invalid => "E_INVALID",
            ErrorCode::BadBody => "E_BAD_BODY",
            ErrorCode::BadTopic => "E_BAD_TOPIC",
            ErrorCode::BadChannel => "E_BAD_CHANNEL",
            ErrorCode::BadMessage => "E_BAD_MESSAGE",
            ErrorCode::PubFailed => "E_PUB_FAILED",
            ErrorCode::MpubFailed => "E_MPUB_FAILED",
            ErrorCode::DpubFailed => "E_DPUB_FAILED",
            ErrorCode::SubFailed => "E_SUB_FAILED",
            ErrorCode::IdentifyFailed => "E_IDENTIFY_FAILED",
            ErrorCode::AuthDisabled => "E_AUTH_DISABLED",
            ErrorCode::AuthFailed => "E_AUTH_FAILED",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
            ErrorCode::AuthFirst => "E_AUTH_FIRST",
            ErrorCode::AuthError => "E_AUTH_ERROR",
            ErrorCode::FinFailed => "E_FIN_FAILED",
            ErrorCode::ReqFailed => "E_REQ_FAILED",
            ErrorCode::TouchFailed => "E_TOUCH_FAILED",
        }
    }

    /// Only FIN, REQ and TOUCH failures leave the connection open (spec §2).
    pub const fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::FinFailed | ErrorCode::ReqFailed | ErrorCode::TouchFailed
        )
    }
}

/// An error frame's content: `CODE description`, plus whether the connection closes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    /// Raw bytes: descriptions may embed a message ID's 16 raw bytes (spec §2).
    pub desc: Vec<u8>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, desc: impl Into<Vec<u8>>) -> Self {
        ProtocolError {
            code,
            desc: desc.into(),
        }
    }

    pub fn is_fatal(&self) -> bool {
        self.code.is_fatal()
    }

    /// The error frame's data: code, one space, description (the space is kept when empty).
    /// `E_BAD_PROTOCOL` is the one error sent without a space (spec §1.2).
    pub fn frame_data(&self) -> Vec<u8> {
        let code = self.code.as_str().as_bytes();
        if self.code == ErrorCode::BadProtocol {
            return code.to_vec();
        }
        let mut out = Vec::with_capacity(code.len() + 1 + self.desc.len());
        out.extend_from_slice(code);
        out.push(b' ');
        out.extend_from_slice(&self.desc);
        out
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.code.as_str(),
            String::from_utf8_lossy(&self.desc)
        )
    }
}

impl std::error::Error for ProtocolError {}
