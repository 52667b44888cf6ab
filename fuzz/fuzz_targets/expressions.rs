#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nurture_fuzz::expressions(data));
