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

/// `source` without its `//` comments (to the end of the line), so that a
/// word in a comment or a doc comment does not count as code.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `[[bin]]` entries of fuzz/Cargo.toml: `(name, path)`.
fn fuzz_bins(root: &Path) -> Vec<(String, String)> {
    let manifest: toml::Value =
        toml::from_str(&read(&root.join("fuzz/Cargo.toml"))).expect("fuzz/Cargo.toml parses");
    manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|bins| {
            bins.iter()
                .map(|bin| {
                    let field = |key: &str| {
                        bin.get(key)
                            .and_then(toml::Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    (field("name"), field("path"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the ingest config at `path` has a source of provider `name`.
fn has_source(root: &Path, path: &str, name: &str) -> bool {
    let config: toml::Value =
        toml::from_str(&read(&root.join(path))).unwrap_or_else(|e| panic!("{path} parses: {e}"));
    config
        .get("sources")
        .and_then(toml::Value::as_array)
        .is_some_and(|sources| {
            sources
                .iter()
                .any(|source| source.get("provider").and_then(toml::Value::as_str) == Some(name))
        })
}

/// The README's section under `## <title>`, up to the next `## ` heading.
fn readme_section<'a>(readme: &'a str, title: &str) -> &'a str {
    readme
        .split(&format!("\n## {title}\n"))
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default()
}

/// What one provider kind lacks, each item naming the file to write.
fn missing_for(kind: ProviderKind, root: &Path) -> Vec<String> {
    let name = kind.as_str();
    let parser = parser_for(kind);
    let module = parser.module;
    let dir = parser.fixture_dir();
    let mut missing = Vec::new();

    let parser_file = root.join(format!("normalize/src/providers/{module}.rs"));
    let parser_code = code(&std::fs::read_to_string(&parser_file).unwrap_or_default());
    if parser_code.trim().is_empty() {
        missing.push(format!("a parser: normalize/src/providers/{module}.rs"));
    } else if !parser_code.contains("check_hostile(") {
        missing.push(format!(
            "hostile-variant tests: a test in normalize/src/providers/{module}.rs calling \
             `testing::check_hostile`"
        ));
    }

    let fixtures = files_ending(&root.join("tests/fixtures").join(&dir), ".json");
    if fixtures.is_empty() {
        missing.push(format!("a fixture: tests/fixtures/{dir}/<event>.json"));
    }
    // Every golden file of the parser is read by one of its tests: a file
    // no test reads proves nothing.
    let golden: Vec<String> = files_ending(&root.join("normalize/tests/golden"), ".json")
        .into_iter()
        .filter(|file| file.starts_with(&format!("{dir}.")))
        .collect();
    let read_by_a_test: Vec<&String> = golden
        .iter()
        .filter(|file| {
            let golden_name = file.trim_end_matches(".json");
            parser_code.contains(&format!("assert_golden(\"{golden_name}\""))
        })
        .collect();
    if read_by_a_test.is_empty() {
        missing.push(format!(
            "a golden file: normalize/tests/golden/{dir}.<fixture>.json, read by a test in \
             normalize/src/providers/{module}.rs calling `testing::assert_golden(\"{dir}.<fixture>\", ...)` \
             (write the test, then UPDATE_GOLDEN=1 cargo test -p normalize)"
        ));
    }
    for file in golden.iter().filter(|file| !read_by_a_test.contains(file)) {
        missing.push(format!(
            "a test reading normalize/tests/golden/{file}: `assert_golden(\"{}\", ...)` in \
             normalize/src/providers/{module}.rs (or delete the file)",
            file.trim_end_matches(".json")
        ));
    }

    // The fuzz target runs this parser: it names a kind that uses it (a
    // target copied from another parser's fuzzes that one).
    let target = format!("fuzz_targets/{module}.rs");
    let target_code =
        code(&std::fs::read_to_string(root.join("fuzz").join(&target)).unwrap_or_default());
    if target_code.trim().is_empty() {
        missing.push(format!("a fuzz target: fuzz/{target}"));
    } else {
        let kinds: Vec<String> = ProviderKind::ALL
            .iter()
            .filter(|&&other| parser_for(other).module == module)
            .map(|other| format!("ProviderKind::{other:?}"))
            .collect();
        if !kinds.iter().any(|kind| target_code.contains(kind.as_str())) {
            missing.push(format!(
                "a fuzz target that runs this parser: fuzz/{target} naming {}",
                kinds.join(" or ")
            ));
        }
    }
    let bins = fuzz_bins(root);
    match bins.iter().find(|(bin, _)| bin == module) {
        None => missing.push(format!(
            "a `[[bin]] name = \"{module}\"` in fuzz/Cargo.toml"
        )),
        Some((_, path)) if *path != target => missing.push(format!(
            "`path = \"{target}\"` for the `[[bin]] name = \"{module}\"` in fuzz/Cargo.toml \
             (it has `{path}`)"
        )),
        Some(_) => {}
    }

    for config in ["config/ingest.toml", "config/ingest.compose.toml"] {
        if !has_source(root, config, name) {
            missing.push(format!(
                "a source in {config}: [[sources]] with provider = \"{name}\""
            ));
        }
    }

    let readme = read(&root.join("README.md"));
    if !readme_section(&readme, "What each provider yields")
        .lines()
        .any(|line| line.starts_with(&format!("| `{name}` |")))
    {
        missing.push(format!(
            "a row `| `{name}` | ...` in the README's table under \"What each provider yields\""
        ));
    }
    // The sources table: `| `<source>` | <provider> | <check> | <credential> |`.
    if !readme_section(&readme, "Send a webhook")
        .lines()
        .any(|line| line.starts_with("| `") && line.split('|').nth(2).map(str::trim) == Some(name))
    {
        missing.push(format!(
            "a row `| `<source>` | {name} | ...` in the README's sources table under \
             \"Send a webhook\""
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

/// A scratch workspace under the temp directory, holding `files`
/// (`(path, text)`), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, files: &[(&str, &str)]) -> Self {
        let root =
            std::env::temp_dir().join(format!("hand-kept-lists-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create the scratch workspace");
            }
            std::fs::write(&path, text).expect("write a scratch file");
        }
        Self(root)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_names(missing: &[String], expected: &[&str]) {
    assert_eq!(missing.len(), expected.len(), "{missing:#?}");
    for (item, file) in missing.iter().zip(expected) {
        assert!(item.contains(file), "{item} should name {file}");
    }
}

/// The check itself notices a kind with nothing: pointed at an empty
/// workspace, every item is named.
#[test]
fn an_incomplete_provider_is_named_with_every_missing_piece() {
    let empty = Scratch::new(
        "empty",
        &[
            ("fuzz/Cargo.toml", ""),
            ("config/ingest.toml", ""),
            ("config/ingest.compose.toml", ""),
            ("README.md", ""),
        ],
    );
    assert_names(
        &missing_for(ProviderKind::StreamEstate, &empty.0),
        &[
            "normalize/src/providers/stream_estate.rs",
            "tests/fixtures/stream-estate/",
            "normalize/tests/golden/stream-estate.",
            "fuzz/fuzz_targets/stream_estate.rs",
            "fuzz/Cargo.toml",
            "config/ingest.toml",
            "config/ingest.compose.toml",
            "What each provider yields",
            "Send a webhook",
        ],
    );
}

/// Pieces that only look present are named too: a test mentioned in a
/// comment, a golden file no test reads, a fuzz target copied from another
/// parser (or a `[[bin]]` pointing at another's file), and README rows in
/// the wrong table.
#[test]
fn a_piece_that_only_looks_present_is_named() {
    let source = "[[sources]]\nname = \"s\"\nprovider = \"stream-estate\"\n";
    let looks_complete = Scratch::new(
        "looks-complete",
        &[
            (
                "normalize/src/providers/stream_estate.rs",
                "pub fn parse() {}\n\
                 // TODO: testing::check_hostile(parse, &context, &cases);\n\
                 /// assert_golden(\"stream-estate.ad.update.price\", &events);\n",
            ),
            ("tests/fixtures/stream-estate/ad.update.price.json", "{}"),
            (
                "normalize/tests/golden/stream-estate.ad.update.price.json",
                "[]",
            ),
            (
                "fuzz/fuzz_targets/stream_estate.rs",
                "//! Fuzzes ProviderKind::StreamEstate.\n\
                 fuzz_target!(|body: &[u8]| check(ProviderKind::Generic, None, body));\n",
            ),
            (
                "fuzz/Cargo.toml",
                "[[bin]]\nname = \"stream_estate\"\npath = \"fuzz_targets/generic.rs\"\n",
            ),
            ("config/ingest.toml", source),
            ("config/ingest.compose.toml", source),
            (
                "README.md",
                "## Send a webhook\n\n| `stream-estate` | one event per body |\n\n\
                 ## What each provider yields\n\n| `s` | stream-estate | source-address |\n",
            ),
        ],
    );
    assert_names(
        &missing_for(ProviderKind::StreamEstate, &looks_complete.0),
        &[
            "calling `testing::check_hostile`",
            "read by a test",
            "a test reading normalize/tests/golden/stream-estate.ad.update.price.json",
            "fuzz/fuzz_targets/stream_estate.rs naming ProviderKind::StreamEstate",
            "(it has `fuzz_targets/generic.rs`)",
            "What each provider yields",
            "Send a webhook",
        ],
    );
}

/// `scripts/fuzz.sh` seeds each fuzz target from
/// `tests/fixtures/<target in kebab-case>/*.json` and stops at one without
/// seeds: every `[[bin]]` of fuzz/Cargo.toml has them, so the script never
/// finds out after fuzzing the others.
#[test]
fn every_fuzz_target_has_seeds() {
    let root = root();
    let unseeded: Vec<String> = fuzz_bins(&root)
        .into_iter()
        .map(|(bin, _)| format!("tests/fixtures/{}/", bin.replace('_', "-")))
        .filter(|dir| files_ending(&root.join(dir), ".json").is_empty())
        .collect();
    assert!(
        unseeded.is_empty(),
        "fuzz targets scripts/fuzz.sh cannot seed; add a fixture to each of: {unseeded:?}"
    );
}

/// `scripts/fuzz.sh` checks every target's seeds before it builds or fuzzes
/// any: a target without a fixture folder fails at once, named, instead of
/// after minutes of building and fuzzing the targets listed before it. Run
/// with a stand-in cargo-fuzz (where the script caches the real one) that
/// lists a target with no fixtures, and a `cargo` that refuses to install.
#[test]
fn fuzz_sh_names_a_target_without_seeds_before_building() {
    let stand_in = "#!/usr/bin/env bash\n\
        case \"$1\" in\n\
          list) printf 'generic\\nno_fixtures\\n' ;;\n\
          *) echo \"stand-in cargo-fuzz $1\" >&2 ;;\n\
        esac\n";
    let cache = Scratch::new(
        "fuzz-sh",
        &[
            ("estate-pipeline/cargo-fuzz-0.13.2/bin/cargo-fuzz", stand_in),
            ("bin/cargo", "#!/usr/bin/env bash\nexit 97\n"),
        ],
    );
    for file in [
        "estate-pipeline/cargo-fuzz-0.13.2/bin/cargo-fuzz",
        "bin/cargo",
    ] {
        let status = std::process::Command::new("chmod")
            .args(["+x"])
            .arg(cache.0.join(file))
            .status()
            .expect("chmod runs");
        assert!(status.success());
    }
    let path = format!(
        "{}:{}",
        cache.0.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/fuzz.sh"))
        .arg("1")
        .env("XDG_CACHE_HOME", &cache.0)
        .env("PATH", path)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("fuzz target no_fixtures has no seeds: no tests/fixtures/no-fixtures/*.json"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("stand-in cargo-fuzz build") && !stderr.contains("==> fuzzing"),
        "checked before building or fuzzing: {stderr}"
    );
}
