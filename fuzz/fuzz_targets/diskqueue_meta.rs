#![no_main]
//! A damaged metadata file recovered.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_diskqueue::fuzzing::meta(data));
