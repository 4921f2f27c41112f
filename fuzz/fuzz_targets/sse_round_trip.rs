//! cargo-fuzz target: see `mcp_bastion_fuzz::sse_round_trip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bastion_fuzz::sse_round_trip(data));
