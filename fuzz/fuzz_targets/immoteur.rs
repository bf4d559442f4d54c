//! Fuzz target: the immoteur parser on arbitrary bytes, with and without
//! the event id header. Immoteur sends its event id in a header; without
//! one the parser derives an id from the body. The input's length chooses
//! (even: with the header), so no byte of the JSON is spent on the choice
//! and the fixtures still seed both paths.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let event_id = body
        .len()
        .is_multiple_of(2)
        .then_some("6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f");
    normalize_fuzz::check(normalize::providers::ProviderKind::Immoteur, event_id, body);
});
