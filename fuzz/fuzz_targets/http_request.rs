#![no_main]
//! One HTTP/1.x request: framing, path, query.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_rpc::fuzzing::http_request(data));
