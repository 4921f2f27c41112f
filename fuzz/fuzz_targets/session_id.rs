//! cargo-fuzz target: see `mcp_bastion_fuzz::session_id`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bastion_fuzz::session_id(data));
