//! breaker-s19: `estate-bench` as a user runs it with what it cannot use
//! (an unknown command, `render` without, with a missing or with a garbage
//! results file) ends at once with exit status 1 or 2 and an error naming
//! what is wrong, never a panic, and writes no report.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estate-bench"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run estate-bench")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("breaker-s19-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unknown_command_or_a_render_without_results_is_a_usage_error() {
    let unknown = bench(&["bogus"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("unrecognized subcommand 'bogus'"));
    let bare = bench(&["render"]);
    assert_eq!(bare.status.code(), Some(2), "{}", stderr(&bare));
    assert!(stderr(&bare).contains("--results"), "{}", stderr(&bare));
}

#[test]
fn render_of_a_missing_or_garbage_results_file_fails_naming_it_and_writes_nothing() {
    let dir = scratch("render");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, b"garbage{").expect("write");
    let empty_object = dir.join("empty.json");
    std::fs::write(&empty_object, b"{}").expect("write");
    let missing = dir.join("missing.json");
    for (results, says) in [
        (&missing, "cannot read"),
        (&garbage, "is not an estate-bench results.json"),
        (&empty_object, "is not an estate-bench results.json"),
    ] {
        let out = dir.join("out");
        let output = bench(&[
            "render",
            "--results",
            &results.display().to_string(),
            "--out",
            &out.display().to_string(),
        ]);
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}: {text}",
            results.display()
        );
        assert!(
            text.contains(says) && text.contains(&results.display().to_string()),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            !out.join("report.md").exists(),
            "a report from {}",
            results.display()
        );
    }
}

#[test]
fn render_of_a_committed_results_file_writes_the_report_and_chart() {
    let dir = scratch("committed");
    let results = concat!(env!("CARGO_MANIFEST_DIR"), "/../benchmarks/results.json");
    let out = dir.join("out");
    let output = bench(&[
        "render",
        "--results",
        results,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("report.md").is_file());
    assert!(out.join("bench.svg").is_file());
}
