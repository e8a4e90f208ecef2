//! One decoder per wire verb, grouped by family, each raising nsqd's errors in nsqd's order
//! (spec §4). They only parse and validate: applying a command is the session's job.
//!
//! - `session`: NOP, IDENTIFY, AUTH: connection setup.
//! - `subscribe`: SUB, RDY, CLS: the consumer's lifecycle and flow control.
//! - `ack`: FIN, REQ, TOUCH: answers about in-flight messages.
//! - `publish`: PUB, MPUB, DPUB.

pub(super) mod ack;
pub(super) mod publish;
pub(super) mod session;
pub(super) mod subscribe;

#[cfg(test)]
pub(super) mod testing {
    //! Shorthands for the decoder unit tests.

    use crate::options::Options;
    use crate::protocol::{decode, ClientState, Command, DecodeCtx, DecodeError};

    pub fn ctx(state: ClientState, options: &Options) -> DecodeCtx<'_> {
        DecodeCtx {
            state,
            heartbeats_disabled: false,
            tls_required_unmet: false,
            options,
        }
    }

    /// Decodes `buf` in `state` with default options.
    pub fn run(state: ClientState, buf: &[u8]) -> Result<Option<(Command, usize)>, DecodeError> {
        decode(buf, &ctx(state, &Options::default()))
    }

    /// The error frame text `decode` gives, panicking when it is not a protocol error.
    pub fn err_text(result: Result<Option<(Command, usize)>, DecodeError>) -> String {
        match result {
            Err(DecodeError::Protocol(e)) => String::from_utf8_lossy(&e.frame_data()).into_owned(),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
}
