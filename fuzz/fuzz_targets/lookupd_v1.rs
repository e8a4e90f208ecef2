#![no_main]
//! nsqlookupd's TCP V1 commands, IDENTIFY bodies and responses.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_rpc::fuzzing::lookupd_v1(data));
