#![no_main]
//! IDENTIFY's JSON body, parsed and validated.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_core::protocol::fuzzing::identify_json(data));
