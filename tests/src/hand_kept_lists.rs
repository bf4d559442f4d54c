//! Checks of the lists people keep by hand, which the compiler cannot see:
//! the integration tests `tests/Cargo.toml` lists, and everything a
//! provider needs besides the code the compiler already demands once it is
//! a [`ProviderKind`] (README, "Adding a provider"). Each check fails naming
//! what is missing and where it goes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::ProviderKind;
use normalize::providers::parser_for;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// File names in `dir` ending with `suffix` (none when `dir` is missing).
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An integration test file not listed as a `[[test]]` in this
/// package's Cargo.toml is never built nor run, and nothing would say
/// so: this test names it, and a listed file that is gone.
#[test]
fn every_test_file_is_listed_in_cargo_toml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(dir.join("Cargo.toml")).expect("read tests/Cargo.toml"),
    )
    .expect("tests/Cargo.toml parses");
    let listed: BTreeSet<String> = manifest
        .get("test")
        .and_then(toml::Value::as_array)
        .map(|tests| {
            tests
                .iter()
                .filter_map(|t| t.get("path").and_then(toml::Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("read the tests directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs"))
        .collect();
    let unlisted: Vec<String> = on_disk
        .difference(&listed)
        .map(|file| {
            let name = file.trim_end_matches(".rs");
            format!("[[test]]\nname = \"{name}\"\npath = \"{file}\"")
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "test files that never run; add to tests/Cargo.toml:\n\n{}",
        unlisted.join("\n\n")
    );
    let missing: Vec<&String> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "listed in tests/Cargo.toml but gone: {missing:?}"
    );
}

/// What one provider kind lacks, each item naming the file to write.
fn missing_for(kind: ProviderKind, root: &Path) -> Vec<String> {
    let name = kind.as_str();
    let parser = parser_for(kind);
    let module = parser.module;
    let dir = parser.fixture_dir();
    let mut missing = Vec::new();

    let parser_file = root.join(format!("normalize/src/providers/{module}.rs"));
    let parser_source = std::fs::read_to_string(&parser_file).unwrap_or_default();
    if parser_source.is_empty() {
        missing.push(format!("a parser: normalize/src/providers/{module}.rs"));
    } else if !parser_source.contains("check_hostile(") {
        missing.push(format!(
            "hostile-variant tests: a test in normalize/src/providers/{module}.rs calling \
             `testing::check_hostile`"
        ));
    }

    let fixtures = files_ending(&root.join("tests/fixtures").join(&dir), ".json");
    if fixtures.is_empty() {
        missing.push(format!("a fixture: tests/fixtures/{dir}/<event>.json"));
    }
    let golden = files_ending(&root.join("normalize/tests/golden"), ".json");
    if !golden
        .iter()
        .any(|file| file.starts_with(&format!("{dir}.")))
    {
        missing.push(format!(
            "a golden file: normalize/tests/golden/{dir}.<fixture>.json (write the test, \
             then UPDATE_GOLDEN=1 cargo test -p normalize)"
        ));
    }

    if !root
        .join(format!("fuzz/fuzz_targets/{module}.rs"))
        .is_file()
    {
        missing.push(format!("a fuzz target: fuzz/fuzz_targets/{module}.rs"));
    }
    let fuzz_manifest: toml::Value =
        toml::from_str(&read(&root.join("fuzz/Cargo.toml"))).expect("fuzz/Cargo.toml parses");
    let fuzz_bins: Vec<&str> = fuzz_manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|bins| {
            bins.iter()
                .filter_map(|bin| bin.get("name").and_then(toml::Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !fuzz_bins.contains(&module) {
        missing.push(format!(
            "a `[[bin]] name = \"{module}\"` in fuzz/Cargo.toml"
        ));
    }

    let ingest_config: toml::Value =
        toml::from_str(&read(&root.join("config/ingest.toml"))).expect("config/ingest.toml parses");
    let has_source = ingest_config
        .get("sources")
        .and_then(toml::Value::as_array)
        .is_some_and(|sources| {
            sources
                .iter()
                .any(|source| source.get("provider").and_then(toml::Value::as_str) == Some(name))
        });
    if !has_source {
        missing.push(format!(
            "a source in config/ingest.toml: [[sources]] with provider = \"{name}\""
        ));
    }

    let readme = read(&root.join("README.md"));
    let yields = readme
        .split("## What each provider yields")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default();
    if !yields
        .lines()
        .any(|line| line.starts_with(&format!("| `{name}` |")))
    {
        missing.push(format!(
            "a row `| `{name}` | ...` in the README's table under \"What each provider yields\""
        ));
    }
    missing
}

/// Every provider kind has what a provider needs beyond its code: a test
/// walks [`ProviderKind::ALL`] and names, per kind, each missing piece.
#[test]
fn every_provider_kind_is_complete() {
    let root = root();
    let report: Vec<String> = ProviderKind::ALL
        .iter()
        .filter_map(|&kind| {
            let missing = missing_for(kind, &root);
            (!missing.is_empty()).then(|| {
                format!(
                    "provider `{}` lacks:\n  - {}",
                    kind.as_str(),
                    missing.join("\n  - ")
                )
            })
        })
        .collect();
    assert!(
        report.is_empty(),
        "{}\n(README, \"Adding a provider\")",
        report.join("\n")
    );
}

/// The check itself notices a kind with nothing: pointed at an empty
/// workspace, every item is named.
#[test]
fn an_incomplete_provider_is_named_with_every_missing_piece() {
    let empty = std::env::temp_dir().join(format!("hand-kept-lists-{}", std::process::id()));
    for dir in ["fuzz", "config"] {
        std::fs::create_dir_all(empty.join(dir)).expect("create the empty workspace");
    }
    std::fs::write(empty.join("fuzz/Cargo.toml"), "").expect("write");
    std::fs::write(empty.join("config/ingest.toml"), "").expect("write");
    std::fs::write(empty.join("README.md"), "").expect("write");
    let missing = missing_for(ProviderKind::StreamEstate, &empty);
    let _ = std::fs::remove_dir_all(&empty);
    let expected = [
        "normalize/src/providers/stream_estate.rs",
        "tests/fixtures/stream-estate/",
        "normalize/tests/golden/stream-estate.",
        "fuzz/fuzz_targets/stream_estate.rs",
        "fuzz/Cargo.toml",
        "config/ingest.toml",
        "README",
    ];
    assert_eq!(missing.len(), expected.len(), "{missing:#?}");
    for (item, file) in missing.iter().zip(expected) {
        assert!(item.contains(file), "{item} should name {file}");
    }
}
