#![no_main]
//! NSQ V2 commands after the magic: `squall_core::protocol::decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_core::protocol::fuzzing::v2_decode(data));
