//! Fuzz target: the stream-estate parser on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    normalize_fuzz::check(normalize::providers::ProviderKind::StreamEstate, None, body);
});
