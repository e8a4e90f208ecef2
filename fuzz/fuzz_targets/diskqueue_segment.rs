#![no_main]
//! A segment file recovered and read back.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_diskqueue::fuzzing::segment(data));
