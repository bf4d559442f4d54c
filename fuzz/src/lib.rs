//! What every fuzz target checks, whatever bytes it is given: the parser of
//! one provider returns events or a precise error, never panics (libFuzzer
//! reports a panic as a crash), and every event it returns fits the Avro
//! schema (an event that does not encode would be dead-lettered as a schema
//! failure in production: a parser bug, so here it is a crash).

#![forbid(unsafe_code)]

use normalize::providers::{Limits, ProviderKind, RawContext, parse};

/// Parses `body` as `provider` would send it and encodes every event.
pub fn check(provider: ProviderKind, event_id: Option<&str>, body: &[u8]) {
    let context = RawContext {
        source: provider.as_str(),
        provider,
        event_id,
        received_at_ms: 1_700_000_000_000,
        topic: "webhooks.raw",
        partition: 0,
        offset: 0,
        limits: Limits::default(),
    };
    if let Ok(events) = parse(&context, body) {
        for event in &events {
            if let Err(error) = schemas::codec::encode_datum(event) {
                panic!("{provider}: a parsed event does not fit the schema: {error}\n{event:?}");
            }
        }
    }
}
