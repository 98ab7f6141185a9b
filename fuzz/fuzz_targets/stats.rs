#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmatrix_fuzz::tracefs::buffer_stats(data));
