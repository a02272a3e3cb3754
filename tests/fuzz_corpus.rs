//! The fuzz corpus (`fuzz/corpus/<target>/`, grown by scripts/fuzz.sh under
//! nightly) replayed on stable: every input the fuzzer kept, and every
//! crash it found, goes through the same function as in the fuzzer, so a
//! regression on any of them fails `cargo test`.

use std::path::Path;

use vane::fuzzing::TARGETS;

fn corpus(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_survives_it() {
    for (name, run) in TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "no corpus for {name}");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name} panics on {}", f.display());
        }
    }
}

#[test]
fn every_target_has_a_fuzzer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in TARGETS {
        let text = std::fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
        assert!(text.contains(&format!("vane::fuzzing::{name}(")), "{name}");
    }
}

/// The pipeline targets evaluate rules: their rule text must keep loading
/// as the rule schema changes, or those targets quietly fuzz less.
#[test]
fn the_pipeline_targets_have_their_rules() {
    assert!(vane::fuzzing::rule_set().is_some());
}
