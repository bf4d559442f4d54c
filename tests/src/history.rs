//! A generated history of generic webhooks for a few dozen properties, the
//! input of the property-state tests: each property is created with full
//! data, then updated by partial events (a few fields each), some are sold
//! by a partial `property.sold` (only `soldPrice` and `soldAt`), some
//! events are delivered twice, and one is dated far in the future. The
//! history is a function of its seed; [`History::shuffled`] gives the same
//! webhooks in another order.

/// One webhook of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The generic envelope, as sent.
    pub body: Vec<u8>,
    /// Its dedupe key (`generic:<envelope id>`).
    pub dedupe_key: String,
    /// Its property key (`generic:<property id>`).
    pub property_key: String,
}

/// The webhooks of a history, duplicates included, in generation order.
#[derive(Debug, Clone)]
pub struct History {
    /// Every delivery.
    pub webhooks: Vec<Webhook>,
    /// The dedupe key of the future-dated event.
    pub future_dated: String,
}

/// A small deterministic generator (64-bit LCG): the tests need the same
/// history on every run, not randomness.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    /// The next number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }

    /// Shuffles `items` (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

const CITIES: [&str; 4] = ["Paris", "Lyon", "Lille", "Nantes"];

impl History {
    /// A history of `properties` properties tagged `tag` (ids stay distinct
    /// between tests sharing a broker).
    pub fn generate(tag: &str, properties: usize, seed: u64) -> Self {
        let mut rng = Lcg::new(seed);
        let mut webhooks = Vec::new();
        let mut n = 0usize;
        let mut next_id = || {
            n += 1;
            format!("evt_{tag}_{n}")
        };
        for p in 0..properties {
            let property_id = format!("prop_{tag}_{p}");
            let day = |d: u64| format!("2024-0{}-{:02}T10:00:00Z", 1 + d / 28, 1 + d % 28);
            let mut d = rng.below(20);
            let created = format!(
                r#""price":{},"bedrooms":{},"bathrooms":{},"rooms":{},"address":"{} rue de la Paix","city":"{}","postcode":"750{:02}","squareMeters":{},"title":"T{} #{p}""#,
                200_000 + rng.below(500) * 1_000,
                1 + rng.below(4),
                1 + rng.below(2),
                2 + rng.below(5),
                1 + rng.below(99),
                CITIES[usize::try_from(rng.below(4)).unwrap_or(0)],
                rng.below(20),
                30 + rng.below(100),
                2 + rng.below(4),
            );
            webhooks.push(webhook(
                "property.created",
                &next_id(),
                &day(d),
                &property_id,
                &created,
            ));
            for _ in 0..1 + rng.below(4) {
                d += 1 + rng.below(5);
                let fields = match rng.below(4) {
                    0 => format!(r#""price":{}"#, 150_000 + rng.below(600) * 1_000),
                    1 => format!(
                        r#""bedrooms":{},"rooms":{}"#,
                        1 + rng.below(4),
                        2 + rng.below(5)
                    ),
                    2 => format!(
                        r#""title":"renovated #{p} v{d}","price":{}"#,
                        300_000 + rng.below(100)
                    ),
                    _ => format!(
                        r#""city":"{}""#,
                        CITIES[usize::try_from(rng.below(4)).unwrap_or(0)]
                    ),
                };
                webhooks.push(webhook(
                    "property.updated",
                    &next_id(),
                    &day(d),
                    &property_id,
                    &fields,
                ));
            }
            if rng.below(3) == 0 {
                d += 1 + rng.below(5);
                let sale = format!(
                    r#""soldPrice":{},"soldAt":"{}""#,
                    190_000 + rng.below(500) * 1_000,
                    day(d)
                );
                webhooks.push(webhook(
                    "property.sold",
                    &next_id(),
                    &day(d),
                    &property_id,
                    &sale,
                ));
            }
        }
        // One sender clock far in the future: it must not pin the property.
        let future_dated = next_id();
        webhooks.push(webhook(
            "property.updated",
            &future_dated,
            "9999-01-01T00:00:00Z",
            &format!("prop_{tag}_0"),
            r#""title":"from the far future""#,
        ));
        // Provider retries: about one delivery in eight again.
        let count = webhooks.len();
        for i in 0..count {
            if rng.below(8) == 0 {
                webhooks.push(webhooks[i].clone());
            }
        }
        Self {
            webhooks,
            future_dated: format!("generic:{future_dated}"),
        }
    }

    /// The same deliveries in another order, fixed by `seed`.
    pub fn shuffled(&self, seed: u64) -> Vec<Webhook> {
        let mut webhooks = self.webhooks.clone();
        Lcg::new(seed).shuffle(&mut webhooks);
        webhooks
    }

    /// The distinct property keys.
    pub fn property_keys(&self) -> std::collections::BTreeSet<String> {
        self.webhooks
            .iter()
            .map(|w| w.property_key.clone())
            .collect()
    }

    /// The distinct dedupe keys.
    pub fn dedupe_keys(&self) -> std::collections::BTreeSet<String> {
        self.webhooks.iter().map(|w| w.dedupe_key.clone()).collect()
    }
}

fn webhook(kind: &str, id: &str, created: &str, property_id: &str, fields: &str) -> Webhook {
    Webhook {
        body: format!(
            r#"{{"id":"{id}","type":"{kind}","created":"{created}","data":{{"property":{{"id":"{property_id}",{fields}}}}}}}"#
        )
        .into_bytes(),
        dedupe_key: format!("generic:{id}"),
        property_key: format!("generic:{property_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_is_a_function_of_its_seed_and_every_body_is_json() {
        let a = History::generate("t", 30, 7);
        assert_eq!(a.webhooks, History::generate("t", 30, 7).webhooks);
        assert!(a.webhooks.len() > 100, "{}", a.webhooks.len());
        assert!(a.dedupe_keys().len() < a.webhooks.len(), "some duplicates");
        for w in &a.webhooks {
            let value: serde_json::Value = serde_json::from_slice(&w.body).expect("JSON");
            assert!(value["data"]["property"]["id"].is_string());
        }
        let shuffled = a.shuffled(1);
        assert_ne!(shuffled, a.webhooks);
        let mut sorted = shuffled.clone();
        sorted.sort_by(|x, y| x.body.cmp(&y.body));
        let mut original = a.webhooks.clone();
        original.sort_by(|x, y| x.body.cmp(&y.body));
        assert_eq!(sorted, original);
    }
}
