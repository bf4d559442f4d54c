//! W3C trace context (`traceparent`) values, created at ingest and carried
//! through every Kafka hop so one webhook can be followed end to end.

use rand::Rng;

/// A fresh sampled `traceparent` with random trace and span ids.
pub fn new_root() -> String {
    let mut rng = rand::rng();
    let trace: [u8; 16] = rng.random();
    let span: [u8; 8] = rng.random();
    format!("00-{}-{}-01", hex::encode(trace), hex::encode(span))
}

/// Whether `value` is a well-formed version-00 `traceparent`.
pub fn is_valid(value: &str) -> bool {
    // `00-` + 32 + `-` + 16 + `-` + 2: anything longer is refused unsplit.
    if value.len() != 55 {
        return false;
    }
    let parts: Vec<&str> = value.split('-').collect();
    let hex_of = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex_of(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex_of(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex_of(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_roots_are_valid_and_distinct() {
        let a = new_root();
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, new_root());
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(!is_valid(""));
        assert!(!is_valid(
            "00-00000000000000000000000000000000-0000000000000001-01"
        ));
        assert!(!is_valid(
            "00-ABCDEF00000000000000000000000001-0000000000000001-01"
        ));
        assert!(!is_valid(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x"
        ));
        assert!(is_valid(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
    }
}
