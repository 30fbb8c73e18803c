#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strato::fuzzing::connection_frames(data));
