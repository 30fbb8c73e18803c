#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strato::fuzzing::record_batches(data));
