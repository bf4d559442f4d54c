//! Fuzz target: the Fluximmo API mapper (by-id and bulk answers) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    normalize_fuzz::check_fluximmo_api(body);
});
