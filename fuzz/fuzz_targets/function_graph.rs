#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmatrix_fuzz::tracefs::function_graph(data));
