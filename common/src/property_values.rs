//! Checks on the values of `[kafka.properties]`, made when a stage loads its
//! config, for the mistakes librdkafka lets through.
//!
//! librdkafka reads a number property with `strtol`: it takes the digits a
//! value starts with and ignores the rest, so `fetch.min.bytes = "16KiB"`
//! runs every fetch on 16 bytes and `fetch.wait.max.ms = "100ms"` is taken
//! as 100 only by luck. Every librdkafka property whose name ends in `.ms`,
//! `.bytes`, `.kbytes` or `.messages` is a number, so such a value must be
//! a plain number, without a unit.
//!
//! And `fetch.wait.max.ms = 0` is within librdkafka's range but stalls the
//! pipeline on the local broker: nisshi never answers a fetch that may not
//! wait with records (a consumer of a topic holding a record got nothing in
//! 25 s), so every stage would start and move nothing, silently. On Apache
//! Kafka it busy-polls the broker. A group consumer's wait is at least 1 ms.

/// Name endings of librdkafka properties that take a number.
const NUMBER_SUFFIXES: [&str; 4] = [".ms", ".bytes", ".kbytes", ".messages"];

/// Checks one `[kafka.properties]` entry; the error names the key, the
/// value and what to write instead.
pub fn check_property_value(key: &str, value: &str) -> Result<(), String> {
    let name = key.trim().to_ascii_lowercase();
    let name = name.strip_prefix("topic.").unwrap_or(&name);
    let value = value.trim();
    if NUMBER_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) && !is_plain_number(value) {
        return Err(format!(
            "`[kafka.properties]` sets `{key}` to `{value}`: it takes a plain number \
             ({unit}, without a unit), e.g. `{key} = \"{example}\"`",
            unit = unit_of(name),
            example = example_of(name),
        ));
    }
    if name == "fetch.wait.max.ms" && value.parse::<f64>().is_ok_and(|ms| ms < 1.0) {
        return Err(format!(
            "`[kafka.properties]` sets `{key}` to `{value}`: a fetch must be allowed to \
             wait at least 1 ms (the default is 100): the local broker (nisshi) never \
             answers a fetch that may not wait with records, so the stage would run and \
             read nothing, and Apache Kafka would be polled without pause"
        ));
    }
    Ok(())
}

/// An optional sign, digits, and an optional decimal fraction (librdkafka
/// takes a fraction for the few properties that are floats, `linger.ms`).
fn is_plain_number(value: &str) -> bool {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn unit_of(name: &str) -> &'static str {
    if name.ends_with(".ms") {
        "milliseconds"
    } else if name.ends_with(".kbytes") {
        "kilobytes"
    } else if name.ends_with(".bytes") {
        "bytes"
    } else {
        "a count of messages"
    }
}

fn example_of(name: &str) -> &'static str {
    if name.ends_with(".ms") {
        "100"
    } else if name.ends_with(".bytes") {
        "16384"
    } else {
        "1000"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_with_a_unit_is_refused_naming_the_key_and_the_unit() {
        let error = check_property_value("fetch.min.bytes", "16KiB").expect_err("refused");
        assert!(error.contains("`fetch.min.bytes`"), "{error}");
        assert!(error.contains("`16KiB`"), "{error}");
        assert!(error.contains("bytes, without a unit"), "{error}");
        let error = check_property_value("fetch.wait.max.ms", "100ms").expect_err("refused");
        assert!(error.contains("milliseconds"), "{error}");
        assert!(check_property_value("queue.buffering.max.kbytes", "1 MB").is_err());
        assert!(check_property_value("batch.num.messages", "ten").is_err());
        assert!(check_property_value("topic.message.timeout.ms", "5s").is_err());
        assert!(check_property_value("Fetch.Min.Bytes", "").is_err());
        assert!(check_property_value("linger.ms", "1.").is_err());
        assert!(check_property_value("linger.ms", ".5").is_err());
    }

    #[test]
    fn plain_numbers_pass_and_other_properties_are_left_to_librdkafka() {
        for (key, value) in [
            ("fetch.min.bytes", "16384"),
            ("fetch.wait.max.ms", "100"),
            ("fetch.wait.max.ms", " 10 "),
            ("linger.ms", "0.5"),
            ("socket.timeout.ms", "+60000"),
            ("statistics.interval.ms", "0"),
            ("security.protocol", "SASL_SSL"),
            ("client.id", "16KiB"),
            ("bootstrap.servers", "10.0.0.1:9092"),
        ] {
            assert_eq!(check_property_value(key, value), Ok(()), "{key} = {value}");
        }
    }

    #[test]
    fn a_fetch_that_may_not_wait_is_refused() {
        for value in ["0", "0.5", "-0", "-1"] {
            let error = check_property_value("fetch.wait.max.ms", value).expect_err("refused");
            assert!(error.contains("at least 1 ms"), "{value}: {error}");
        }
        assert_eq!(check_property_value("fetch.wait.max.ms", "1"), Ok(()));
    }
}
