//! Fuzz target: the fluximmo parser on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    normalize_fuzz::check(normalize::providers::ProviderKind::Fluximmo, None, body);
});
