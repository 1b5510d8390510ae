#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_engine::fuzzing::parse_json(data));
