//! The Confluent wire format: magic byte 0, big-endian 4-byte schema id, then
//! the Avro binary datum. Any Confluent-compatible consumer reads it.

/// Why bytes are not a Confluent-framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than five bytes.
    #[error("value is {0} bytes, shorter than the 5-byte wire-format header")]
    TooShort(usize),
    /// First byte is not 0.
    #[error("value starts with byte {0:#04x}, not the wire-format magic byte 0")]
    BadMagic(u8),
}

/// Frames `datum` with `schema_id`.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed value into its schema id and Avro datum.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [magic, _, _, _, _, ..] => Err(WireError::BadMagic(*magic)),
        _ => Err(WireError::TooShort(bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_split_round_trip() {
        let framed = frame(258, b"abc");
        assert_eq!(framed, vec![0, 0, 0, 1, 2, b'a', b'b', b'c']);
        assert_eq!(split(&framed), Ok((258, &b"abc"[..])));
    }

    #[test]
    fn rejects_short_and_unframed_values() {
        assert_eq!(split(&[0, 0, 1]), Err(WireError::TooShort(3)));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::BadMagic(b'{')));
    }
}
