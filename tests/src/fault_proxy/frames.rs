//! The little of the Kafka wire protocol the fault proxy needs: where a
//! frame ends, which request a response answers, and where the broker
//! addresses are in the two responses that carry them (Metadata and
//! FindCoordinator), so the proxy can point a client's every later
//! connection back at itself. Pure functions over bytes, unit-tested here.
//!
//! Every Kafka frame is a 4-byte big-endian length and that many bytes. A
//! request starts with `api_key` (i16), `api_version` (i16) and
//! `correlation_id` (i32); its response starts with the same
//! `correlation_id`, followed, in flexible versions (Metadata v9+,
//! FindCoordinator v3+), by tagged fields. Only the ports are rewritten, in
//! place: the proxy listens on the host the broker advertises (loopback),
//! so every frame keeps its length.

/// `Produce`.
pub const PRODUCE: i16 = 0;
/// `Fetch`.
pub const FETCH: i16 = 1;
/// `Metadata`: lists the brokers.
pub const METADATA: i16 = 3;
/// `OffsetCommit`.
pub const OFFSET_COMMIT: i16 = 8;
/// `FindCoordinator`: names the group coordinator.
pub const FIND_COORDINATOR: i16 = 10;

/// What a request frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API.
    pub api_key: i16,
    /// Its version.
    pub api_version: i16,
    /// What the response will carry.
    pub correlation_id: i32,
}

/// A frame the proxy cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed Kafka frame: {}", self.0)
    }
}

/// The header of a request frame (without its length prefix).
pub fn request_header(frame: &[u8]) -> Result<RequestHeader, Malformed> {
    let mut reader = Reader::new(frame);
    Ok(RequestHeader {
        api_key: reader.i16()?,
        api_version: reader.i16()?,
        correlation_id: reader.i32()?,
    })
}

/// The correlation id of a response frame (without its length prefix).
pub fn correlation_id(frame: &[u8]) -> Result<i32, Malformed> {
    Reader::new(frame).i32()
}

/// Whether responses to `api_key` carry broker addresses.
pub fn carries_addresses(api_key: i16) -> bool {
    matches!(api_key, METADATA | FIND_COORDINATOR)
}

/// Sets every broker port in a response to `request` to `port`, in place;
/// returns how many it set. Other responses are left alone (0).
pub fn rewrite_ports(
    request: &RequestHeader,
    frame: &mut [u8],
    port: u16,
) -> Result<usize, Malformed> {
    let version = request.api_version;
    let ports = match request.api_key {
        METADATA => metadata_ports(frame, version)?,
        FIND_COORDINATOR => coordinator_ports(frame, version)?,
        _ => Vec::new(),
    };
    let bytes = i32::from(port).to_be_bytes();
    for &at in &ports {
        frame[at..at + 4].copy_from_slice(&bytes);
    }
    Ok(ports.len())
}

/// Where the `port` of each broker of a Metadata response is.
fn metadata_ports(frame: &[u8], version: i16) -> Result<Vec<usize>, Malformed> {
    let flexible = version >= 9;
    let mut reader = Reader::new(frame);
    reader.response_header(flexible)?;
    if version >= 3 {
        let _throttle_time_ms = reader.i32()?;
    }
    let brokers = reader.array_len(flexible)?;
    let mut ports = Vec::with_capacity(brokers);
    for _ in 0..brokers {
        let _node_id = reader.i32()?;
        reader.string(flexible)?;
        ports.push(reader.position);
        let _port = reader.i32()?;
        if version >= 1 {
            reader.string(flexible)?; // rack, nullable
        }
        if flexible {
            reader.tagged_fields()?;
        }
    }
    Ok(ports)
}

/// Where the `port` of each coordinator of a FindCoordinator response is.
fn coordinator_ports(frame: &[u8], version: i16) -> Result<Vec<usize>, Malformed> {
    let flexible = version >= 3;
    let mut reader = Reader::new(frame);
    reader.response_header(flexible)?;
    if version >= 1 {
        let _throttle_time_ms = reader.i32()?;
    }
    if version < 4 {
        let _error_code = reader.i16()?;
        if version >= 1 {
            reader.string(flexible)?; // error message, nullable
        }
        let _node_id = reader.i32()?;
        reader.string(flexible)?;
        return Ok(vec![reader.position]);
    }
    let coordinators = reader.array_len(true)?;
    let mut ports = Vec::with_capacity(coordinators);
    for _ in 0..coordinators {
        reader.string(true)?; // key
        let _node_id = reader.i32()?;
        reader.string(true)?; // host
        ports.push(reader.position);
        let _port = reader.i32()?;
        let _error_code = reader.i16()?;
        reader.string(true)?; // error message, nullable
        reader.tagged_fields()?;
    }
    Ok(ports)
}

/// Reads a frame front to back.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self
            .position
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(Malformed("shorter than its fields"))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn i16(&mut self) -> Result<i16, Malformed> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Malformed> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("varint too long"))
    }

    fn length(&mut self, n: u64) -> Result<usize, Malformed> {
        usize::try_from(n).map_err(|_| Malformed("length too large"))
    }

    /// The correlation id, and in flexible versions the header's tags.
    fn response_header(&mut self, flexible: bool) -> Result<(), Malformed> {
        let _correlation_id = self.i32()?;
        if flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }

    /// An array's length (a compact array's is stored plus one).
    fn array_len(&mut self, compact: bool) -> Result<usize, Malformed> {
        if compact {
            let n = self.uvarint()?;
            self.length(n.saturating_sub(1))
        } else {
            let n = self.i32()?;
            self.length(u64::try_from(n.max(0)).unwrap_or(0))
        }
    }

    /// Skips a string, nullable or not (null: -1, or 0 when compact).
    fn string(&mut self, compact: bool) -> Result<(), Malformed> {
        let len = if compact {
            let n = self.uvarint()?;
            self.length(n.saturating_sub(1))?
        } else {
            let n = self.i16()?;
            self.length(u64::try_from(n.max(0)).unwrap_or(0))?
        };
        let _ = self.take(len)?;
        Ok(())
    }

    fn tagged_fields(&mut self) -> Result<(), Malformed> {
        let fields = self.uvarint()?;
        for _ in 0..fields {
            let _tag = self.uvarint()?;
            let size = self.uvarint()?;
            let size = self.length(size)?;
            let _ = self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes frames the way a broker does.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn uvarint(mut self, mut v: u64) -> Self {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
            self
        }
        fn string(self, s: Option<&str>, compact: bool) -> Self {
            match (s, compact) {
                (None, true) => self.uvarint(0),
                (None, false) => self.i16(-1),
                (Some(s), true) => {
                    let mut w = self.uvarint(s.len() as u64 + 1);
                    w.0.extend_from_slice(s.as_bytes());
                    w
                }
                (Some(s), false) => {
                    let mut w = self.i16(s.len() as i16);
                    w.0.extend_from_slice(s.as_bytes());
                    w
                }
            }
        }
        fn no_tags(self) -> Self {
            self.uvarint(0)
        }
        fn one_tag(self) -> Self {
            let mut w = self.uvarint(1).uvarint(0).uvarint(3);
            w.0.extend_from_slice(b"abc");
            w
        }
    }

    fn request(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 7,
        }
    }

    fn ports_after(request: &RequestHeader, frame: &[u8], expected: usize) -> Vec<u8> {
        let mut rewritten = frame.to_vec();
        assert_eq!(
            rewrite_ports(request, &mut rewritten, 1234),
            Ok(expected),
            "{request:?}"
        );
        assert_eq!(rewritten.len(), frame.len(), "the frame keeps its length");
        rewritten
    }

    /// A Metadata response of `version` with brokers on port 9092, and the
    /// same with port 1234.
    fn metadata(version: i16, port: i32) -> Vec<u8> {
        let flexible = version >= 9;
        let mut w = Writer::default().i32(7);
        if flexible {
            w = w.one_tag();
        }
        if version >= 3 {
            w = w.i32(0);
        }
        w = if flexible { w.uvarint(3) } else { w.i32(2) };
        for (node, rack) in [(1, None), (2, Some("rack-b"))] {
            w = w.i32(node).string(Some("127.0.0.1"), flexible).i32(port);
            if version >= 1 {
                w = w.string(rack, flexible);
            }
            if flexible {
                w = w.no_tags();
            }
        }
        // The rest of the response (cluster id, topics...) is left as is.
        w.string(Some("cluster"), flexible).i32(-1).0
    }

    #[test]
    fn metadata_ports_are_rewritten_in_every_version() {
        for version in [0, 1, 2, 3, 8, 9, 12, 13] {
            let rewritten = ports_after(&request(METADATA, version), &metadata(version, 9092), 2);
            assert_eq!(rewritten, metadata(version, 1234), "v{version}");
        }
    }

    fn coordinator(version: i16, port: i32) -> Vec<u8> {
        let flexible = version >= 3;
        let mut w = Writer::default().i32(7);
        if flexible {
            w = w.no_tags();
        }
        if version >= 1 {
            w = w.i32(0);
        }
        if version < 4 {
            w = w.i16(0);
            if version >= 1 {
                w = w.string(None, flexible);
            }
            w = w.i32(1).string(Some("127.0.0.1"), flexible).i32(port);
            return if flexible { w.no_tags().0 } else { w.0 };
        }
        w = w.uvarint(3); // a compact array stores its length plus one
        for group in ["normalize", "dedupe"] {
            w = w
                .string(Some(group), true)
                .i32(1)
                .string(Some("127.0.0.1"), true)
                .i32(port)
                .i16(0)
                .string(Some("ok"), true)
                .no_tags();
        }
        w.no_tags().0
    }

    #[test]
    fn coordinator_ports_are_rewritten_in_every_version() {
        for version in [0, 1, 2, 3] {
            let rewritten = ports_after(
                &request(FIND_COORDINATOR, version),
                &coordinator(version, 9092),
                1,
            );
            assert_eq!(rewritten, coordinator(version, 1234), "v{version}");
        }
        for version in [4, 6] {
            let rewritten = ports_after(
                &request(FIND_COORDINATOR, version),
                &coordinator(version, 9092),
                2,
            );
            assert_eq!(rewritten, coordinator(version, 1234), "v{version}");
        }
    }

    #[test]
    fn other_responses_are_left_alone_and_short_frames_refused() {
        let frame = Writer::default().i32(7).i32(9092).0;
        assert_eq!(ports_after(&request(PRODUCE, 9), &frame, 0), frame);
        assert!(!carries_addresses(PRODUCE) && carries_addresses(METADATA));
        let mut short = metadata(12, 9092);
        short.truncate(20);
        assert!(rewrite_ports(&request(METADATA, 12), &mut short, 1).is_err());
    }

    #[test]
    fn headers_are_read_from_the_front_of_a_frame() {
        let frame = Writer::default()
            .i16(PRODUCE)
            .i16(9)
            .i32(42)
            .string(Some("rdkafka"), false)
            .0;
        assert_eq!(
            request_header(&frame),
            Ok(RequestHeader {
                api_key: PRODUCE,
                api_version: 9,
                correlation_id: 42
            })
        );
        assert_eq!(correlation_id(&frame[4..]), Ok(42));
        assert!(request_header(&frame[..3]).is_err());
    }
}
