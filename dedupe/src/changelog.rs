//! The value kept per dedupe key in the compacted `dedupe.seen` topic.

use serde::{Deserialize, Serialize};

/// One changelog value (JSON): when the key was first seen and where its
/// event went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenRecord {
    /// First sighting, Unix ms.
    pub first_seen_ms: i64,
    /// Offset of the forwarded event in the output partition.
    pub output_offset: i64,
    /// Offset of the input record it came from.
    pub source_offset: i64,
}

impl SeenRecord {
    /// Encodes as JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing a struct of integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let r = SeenRecord {
            first_seen_ms: 1,
            output_offset: 2,
            source_offset: 3,
        };
        assert_eq!(SeenRecord::decode(&r.encode()).expect("decodes"), r);
        assert!(SeenRecord::decode(b"nope").is_err());
    }
}
