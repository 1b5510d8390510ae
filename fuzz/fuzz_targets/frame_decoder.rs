#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_engine::fuzzing::frame_decoder(data));
