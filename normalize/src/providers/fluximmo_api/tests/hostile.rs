//! Hostile answers: each gives snapshots or a precise error, never a panic.

use serde_json::{Value, json};

use super::{FIXTURE, bulk, by_id_events, fixture_value, many_events, remove, with};
use crate::providers::ParseError;
use crate::providers::testing::{Expect, check_hostile, context, fixture, nested};

/// `TooManyItems` of `field` under the default limit.
fn too_many(field: &'static str, count: usize) -> Expect {
    Expect::Error(ParseError::TooManyItems {
        field,
        count,
        max: 1_000,
    })
}

/// The `PropertyDto` members that are objects.
const OBJECTS: [&str; 7] = [
    "offer",
    "price",
    "location",
    "habitation",
    "land",
    "medias",
    "meta",
];

#[test]
fn hostile_by_id_answers_give_a_snapshot_or_a_precise_error() {
    let images = |n: usize| -> Vec<u8> {
        with(|dto| {
            dto["medias"]["images"] = Value::from(vec![json!({"url": "https://i/x.jpg"}); n])
        })
    };
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "not JSON",
            b"<html>502</html>".to_vec(),
            Expect::Kind("invalid_json"),
        ),
        (
            "truncated",
            fixture(FIXTURE)[..400].to_vec(),
            Expect::Kind("invalid_json"),
        ),
        (
            "deep nesting",
            nested(10_000, "1").into_bytes(),
            Expect::Kind("invalid_json"),
        ),
        ("array body", b"[]".to_vec(), Expect::Kind("invalid_field")),
        (
            "data missing",
            br#"{"meta":{}}"#.to_vec(),
            Expect::Error(ParseError::MissingField("data")),
        ),
        (
            "data null",
            br#"{"data":null}"#.to_vec(),
            Expect::Error(ParseError::MissingField("data")),
        ),
        (
            "an API error body",
            br#"{"error":{"message":"Not Found","code":10003}}"#.to_vec(),
            Expect::Error(ParseError::InvalidField {
                field: "error",
                reason: "the API answered an error: Not Found (code 10003)".to_string(),
            }),
        ),
        (
            "data is an array",
            bulk(vec![fixture_value()["data"].clone()]),
            Expect::Kind("invalid_field"),
        ),
        (
            "no flxId",
            with(|dto| remove(dto, "flxId")),
            Expect::Error(ParseError::MissingField("data.flxId")),
        ),
        (
            "blank flxId",
            with(|dto| dto["flxId"] = Value::from(" ")),
            Expect::Error(ParseError::MissingField("data.flxId")),
        ),
        (
            "numeric flxId",
            with(|dto| dto["flxId"] = Value::from(42)),
            Expect::Events(1),
        ),
        (
            "only a flxId",
            br#"{"data":{"flxId":"p"}}"#.to_vec(),
            Expect::Events(1),
        ),
        (
            "missing objects",
            with(|dto| {
                for key in OBJECTS.into_iter().chain(["adverts"]) {
                    remove(dto, key);
                }
            }),
            Expect::Events(1),
        ),
        (
            "null objects and members",
            with(|dto| {
                for key in OBJECTS.into_iter().chain(["type"]) {
                    dto[key] = Value::Null;
                }
                dto["adverts"] = json!([null, {"source": null, "seller": null, "price": null}]);
            }),
            Expect::Events(1),
        ),
        (
            "objects of the wrong type",
            with(|dto| {
                dto["price"] = json!("449000");
                dto["location"] = json!([1, 2]);
                dto["habitation"]["surface"] = json!(118);
                dto["adverts"] = json!({"flxId": "a"});
                dto["meta"]["lastUpdatedAt"] = json!(1_762_333_802);
            }),
            Expect::Events(1),
        ),
        (
            "unknown enums",
            with(|dto| {
                dto["type"] = json!("CLASS_SPACESHIP");
                dto["habitation"]["climate"]["epcEnergy"] = json!("ENERGY_CLASSIFICATION_Z");
                dto["habitation"]["features"]["exposure"] = json!("EXPOSURE_UP");
                dto["habitation"]["type"] = json!(["PROPERTY_TYPE_T3"]);
                dto["adverts"][0]["seller"]["type"] = json!("SELLER_TYPE_NOTARY");
            }),
            Expect::Events(1),
        ),
        (
            "numbers as strings",
            with(|dto| {
                dto["price"]["latest"]["value"] = json!("449000");
                dto["habitation"]["roomCount"] = json!("6");
                dto["habitation"]["surface"]["total"] = json!(" 118.5 ");
                dto["habitation"]["climate"]["epcEnergyScore"] = json!("142");
            }),
            Expect::Events(1),
        ),
        (
            "absurd numbers",
            with(|dto| {
                dto["habitation"]["roomCount"] = json!(1e300);
                dto["price"]["latest"]["value"] = json!(-1e308);
                dto["habitation"]["propertyCondition"]["constructionYear"] = json!(19.78);
            }),
            Expect::Events(1),
        ),
        (
            "unparseable times",
            with(|dto| dto["meta"]["firstSeenAt"] = json!("hier")),
            Expect::Events(1),
        ),
        (
            "huge image list",
            images(50_000),
            too_many("data.medias.images", 50_000),
        ),
        ("image list at the limit", images(1_000), Expect::Events(1)),
        (
            "huge advert list",
            with(|dto| dto["adverts"] = Value::from(vec![json!({}); 1_001])),
            too_many("data.adverts", 1_001),
        ),
    ];
    check_hostile(by_id_events, &context("fluximmo"), &cases);
}

#[test]
fn hostile_bulk_answers_give_snapshots_or_a_precise_error() {
    let dto = || fixture_value()["data"].clone();
    let mut c = context("fluximmo");
    c.limits.max_events_per_record = 4;
    let mut huge_images = dto();
    huge_images["medias"]["images"] = Value::from(vec![json!({}); 1_001]);
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty", bulk(vec![]), Expect::Events(0)),
        (
            "a broken element among good ones",
            bulk(vec![dto(), json!(null), json!(7), dto()]),
            Expect::Events(2),
        ),
        (
            "an element without flxId",
            bulk(vec![json!({"title": "x"}), dto()]),
            Expect::Events(1),
        ),
        (
            "data is an object",
            with(|_| {}),
            Expect::Kind("invalid_field"),
        ),
        (
            "data missing",
            br#"{"items":[]}"#.to_vec(),
            Expect::Error(ParseError::MissingField("data")),
        ),
        (
            "not JSON",
            b"\xff\xfe".to_vec(),
            Expect::Kind("invalid_json"),
        ),
        (
            "more properties than events allowed",
            bulk(vec![json!({}); 5]),
            Expect::Error(ParseError::TooManyEvents { count: 5, max: 4 }),
        ),
        (
            "an element with a huge array",
            bulk(vec![dto(), huge_images]),
            too_many("data[].medias.images", 1_001),
        ),
    ];
    check_hostile(many_events, &c, &cases);
}
