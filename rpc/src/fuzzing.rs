//! Checks the fuzz targets run on arbitrary bytes, shared with the corpus replay test
//! (`bins/tests/fuzz_corpus.rs`) so that stable CI exercises every committed corpus file.
//!
//! Each check feeds the real entry point and asserts an invariant beyond "does not panic"; a
//! failed assertion is a finding.

use crate::httpd::{clean_path, expects_continue, parse_request, Limits, Request};
use crate::lookupd::{decode_command, decode_response, PeerInfo};

/// Bytes appended to show that a decided result does not depend on what follows it.
const TRAILER: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPING\n";

/// Small bounds so that the fuzzer reaches every limit in small inputs.
const LIMITS: Limits = Limits {
    header_bytes_max: 512,
    headers_max: 8,
    body_bytes_max: 64,
};

/// One HTTP/1.x request from the front of the bytes, then what a handler derives from it.
///
/// Invariants: a whole request consumes at least one byte and no more than it was given, its
/// body respects the limit, and every strict prefix of it is "need more bytes"; a decided result
/// is the same with more bytes behind it; an error's response is a whole HTTP response.
pub fn http_request(data: &[u8]) {
    let result = parse_request(data, &LIMITS);
    let _ = expects_continue(data, &LIMITS);
    match &result {
        Ok(None) => {}
        Ok(Some((request, consumed))) => {
            let consumed = *consumed;
            assert!(
                consumed > 0 && consumed <= data.len(),
                "consumed {consumed} of {}",
                data.len()
            );
            assert!(
                request.body.len() <= LIMITS.body_bytes_max,
                "body of {}",
                request.body.len()
            );
            let _ = request.query();
            let _ = request.reply_to();
            let cleaned = clean_path(&request.path);
            assert!(
                cleaned.starts_with('/') || request.path == "*",
                "clean_path gave {cleaned:?}"
            );
            for cut in [consumed - 1, consumed / 2] {
                assert!(
                    matches!(parse_request(&data[..cut], &LIMITS), Ok(None)),
                    "a {cut}-byte prefix of a whole {consumed}-byte request"
                );
            }
        }
        Err(e) => {
            let bytes = e.response_bytes();
            assert!(bytes.starts_with(b"HTTP/1.1 "), "error response {bytes:?}");
            assert!(
                bytes.windows(4).any(|w| w == b"\r\n\r\n"),
                "error response without a blank line"
            );
        }
    }
    if !matches!(result, Ok(None)) {
        let mut longer = data.to_vec();
        longer.extend_from_slice(TRAILER);
        assert!(
            same_request(&parse_request(&longer, &LIMITS), &result),
            "more bytes changed a decided result"
        );
    }
}

type Parsed = Result<Option<(Request, usize)>, crate::httpd::HttpError>;

fn same_request(a: &Parsed, b: &Parsed) -> bool {
    match (a, b) {
        (Ok(Some((ra, na))), Ok(Some((rb, nb)))) => {
            na == nb
                && ra.method == rb.method
                && ra.target == rb.target
                && ra.path == rb.path
                && ra.raw_query == rb.raw_query
                && ra.headers == rb.headers
                && ra.keep_alive == rb.keep_alive
                && ra.body == rb.body
        }
        (Err(ea), Err(eb)) => ea == eb,
        _ => false,
    }
}

/// nsqlookupd's V1 protocol. The first byte picks the side: a server decoding a command (bit 0:
/// whether the peer has identified) or a client decoding a response.
///
/// Invariants: a whole command or response consumes at least one byte and no more than it was
/// given, and every strict prefix of it is "need more bytes"; a decided result is the same with
/// more bytes behind it; an accepted IDENTIFY carries every field nsqlookupd requires.
pub fn lookupd_v1(data: &[u8]) {
    let Some((&selector, buf)) = data.split_first() else {
        return;
    };
    if selector & 0x80 != 0 {
        return lookupd_response(buf);
    }
    let identified = selector & 1 != 0;
    let result = decode_command(buf, identified);
    if let Ok(Some((command, consumed))) = &result {
        let consumed = *consumed;
        assert!(
            consumed > 0 && consumed <= buf.len(),
            "consumed {consumed} of {}",
            buf.len()
        );
        if let crate::lookupd::Command::Identify(peer) = command {
            assert!(peer.has_required_fields(), "IDENTIFY accepted without {peer:?}");
        }
        for cut in [consumed - 1, consumed / 2] {
            assert_eq!(
                decode_command(&buf[..cut], identified),
                Ok(None),
                "a {cut}-byte prefix of a whole {consumed}-byte command"
            );
        }
    }
    if !matches!(result, Ok(None)) {
        let mut longer = buf.to_vec();
        longer.extend_from_slice(TRAILER);
        assert_eq!(
            decode_command(&longer, identified),
            result,
            "more bytes changed a decided result"
        );
    }
    // The IDENTIFY body parser on its own: whatever follows a size would be.
    let _ = PeerInfo::from_identify_body(buf);
}

fn lookupd_response(buf: &[u8]) {
    const MAX: usize = 256;
    let result = decode_response(buf, MAX);
    if let Ok(Some((_, consumed))) = &result {
        let consumed = *consumed;
        assert!(consumed >= 4 && consumed <= buf.len() && consumed <= MAX + 4);
        assert_eq!(decode_response(&buf[..consumed - 1], MAX), Ok(None));
    }
    if !matches!(result, Ok(None)) {
        let mut longer = buf.to_vec();
        longer.extend_from_slice(TRAILER);
        assert_eq!(
            decode_response(&longer, MAX),
            result,
            "more bytes changed a decided result"
        );
    }
}
