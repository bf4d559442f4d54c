//! Fuzz target: the immoteur parser on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    normalize_fuzz::check(
        "immoteur",
        Some("6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f"),
        body,
    );
});
