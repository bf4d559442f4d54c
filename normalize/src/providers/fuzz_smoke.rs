//! Bounded, deterministic fuzzing of every parser, run as a unit test until
//! a `cargo fuzz` target exists: each fixture of every parser (found from
//! [`ProviderKind::ALL`] and the fixture folders) is mutated thousands of times,
//! as bytes (flips, truncations, splices) and as JSON (any node replaced by
//! null, a number, a string, an array, an object or deep nesting), and
//! every outcome must be events that fit the schema or a `ParseError`,
//! never a panic. The Fluximmo API mapper is held to the same on its
//! fixture.

use serde_json::{Value, json};

use super::testing::{context, fixture};
use schemas::PropertyEvent;

use super::fluximmo_api::tests::answer_events;
use super::{ParseError, ProviderKind, RawContext, parse, parser_for};

/// A small deterministic generator (xorshift64*): reproducible runs, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// A parser's entry point, or an adapter of a mapper that yields events.
type ParseFn = fn(&RawContext<'_>, &[u8]) -> Result<Vec<PropertyEvent>, ParseError>;

/// Every parser (once, by the first kind that uses it) with every fixture
/// in its folder, and the Fluximmo API mapper with its fixture:
/// `(entry point, provider name, fixture path under tests/fixtures/)`.
fn cases() -> Vec<(ParseFn, &'static str, String)> {
    let mut modules = Vec::new();
    let mut out = Vec::new();
    for &kind in ProviderKind::ALL {
        let parser = parser_for(kind);
        if modules.contains(&parser.module) {
            continue;
        }
        modules.push(parser.module);
        let dir = parser.fixture_dir();
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(&dir);
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", folder.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixture in {}", folder.display());
        out.extend(
            files
                .into_iter()
                .map(|f| (parse as ParseFn, kind.as_str(), format!("{dir}/{f}"))),
        );
    }
    out.push((
        answer_events,
        "fluximmo",
        "fluximmo-api/property-by-id.json".to_string(),
    ));
    out
}

fn check(parse: ParseFn, context: &RawContext<'_>, body: &[u8]) {
    if let Ok(events) = parse(context, body) {
        for event in &events {
            if let Err(e) = schemas::encode_datum(event) {
                panic!("an accepted body gave an event that does not fit the schema: {e}");
            }
        }
    }
}

/// Every JSON pointer in `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn replacement(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => json!(-1e308),
        2 => json!("-2.81"),
        3 => json!(""),
        4 => json!([]),
        5 => json!({}),
        6 => json!(true),
        7 => json!(u64::MAX),
        _ => json!([[[[{"x": [null]}]]]]),
    }
}

#[test]
fn mutated_json_never_panics_a_parser() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (parse, provider, path) in cases() {
        let mut c = context(provider);
        c.event_id = Some("fuzz-event");
        let original: Value = serde_json::from_slice(&fixture(&path)).unwrap_or(Value::Null);
        let mut all = Vec::new();
        pointers(&original, String::new(), &mut all);
        for _ in 0..1000 {
            let mut value = original.clone();
            for _ in 0..=rng.below(3) {
                let pointer = &all[rng.below(all.len())];
                if let Some(node) = value.pointer_mut(pointer) {
                    *node = replacement(&mut rng);
                }
            }
            check(parse, &c, &serde_json::to_vec(&value).unwrap_or_default());
        }
    }
}

#[test]
fn mutated_bytes_never_panic_a_parser() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for (parse, provider, path) in cases() {
        let c = context(provider);
        let original = fixture(&path);
        for _ in 0..1000 {
            let mut body = original.clone();
            match rng.below(3) {
                0 => body.truncate(rng.below(body.len())),
                1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(body.len());
                        body[i] ^= 1 << rng.below(8);
                    }
                }
                _ => {
                    let from = rng.below(body.len());
                    let to = from + rng.below(body.len() - from);
                    let at = rng.below(body.len());
                    let splice = body[from..to].to_vec();
                    let _ = body.splice(at..at, splice);
                }
            }
            check(parse, &c, &body);
        }
    }
}
