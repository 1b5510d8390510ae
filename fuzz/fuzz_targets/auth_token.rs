#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_engine::fuzzing::auth_token(data));
