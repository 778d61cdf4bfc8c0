//! The loader, fuzzed on the stable toolchain (proptest): arbitrary bytes, the shared
//! corpus mutated token by token, and random `.env` files and interpolations. Whatever
//! it is given, it must not panic nor hang, and whatever it refuses must be refused
//! with errors located at a line and column. A crash found here becomes a case in
//! `load.rs`.
//!
//! The driver (`shoal_testkit::fuzz`) runs each target `FUZZ_CASES` cases (default 64),
//! or for `FUZZ_SECONDS`: `scripts/fuzz.sh` runs each for 10 minutes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shoal_spec::{load, LoadError, Options};
use shoal_testkit::fuzz::fuzz;

/// A case that takes longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);

/// Loads `files` (written to a fresh directory) with `environ`; fails on a panic, a
/// hang, or a refusal without a location.
fn check(
    files: Vec<(String, Vec<u8>)>,
    environ: HashMap<String, String>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let opts = Options {
        working_dir: dir.path().to_path_buf(),
        environ,
        ..Options::default()
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| load(&opts).map(|_| ()));
        let _ = tx.send(outcome);
    });
    let outcome = match rx.recv_timeout(HANG) {
        Ok(o) => o,
        Err(_) => return Err(TestCaseError::fail(format!("hung on {files:?}"))),
    };
    let loaded = outcome.map_err(|_| TestCaseError::fail(format!("panicked on {files:?}")))?;
    if let Err(LoadError::Invalid(errors)) = loaded {
        prop_assert!(!errors.is_empty());
        for e in &errors {
            prop_assert!(
                e.mark.line >= 1 && e.mark.col >= 1 && !e.mark.file.is_empty(),
                "an error without a location: {e} for {files:?}"
            );
            prop_assert!(!e.message.is_empty(), "an empty message for {files:?}");
        }
    }
    Ok(())
}

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/awesome-compose");
    let mut files = Vec::new();
    for app in std::fs::read_dir(&root).expect("the shared corpus is beside the repository") {
        let dir = app.unwrap().path();
        for name in [
            "compose.yaml",
            "compose.yml",
            "docker-compose.yml",
            "docker-compose.yaml",
        ] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                files.push((dir.join(name), bytes));
            }
        }
    }
    assert!(files.len() > 10, "the corpus is there");
    files
}

/// Pieces of YAML and of Compose that mutations insert.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    "-",
    "\n",
    "  ",
    "    ",
    "\t",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!int ",
    "!custom ",
    "${",
    "}",
    "${X:-d}",
    "${X:?err}",
    "$$",
    "$",
    "'",
    "\"",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "0x1F",
    "1e400",
    "-1",
    "99999999999999999999",
    "#",
    "|\n",
    ">-\n",
    "? ",
    ",",
    "%YAML 1.2\n",
    "services:",
    "image: x",
    "ports: [\"80:80\"]",
    "deploy: {replicas: -3}",
    "x-shoal: {",
    "healthcheck: {test: []}",
    "\u{feff}",
    "\0",
    "é",
];

/// One mutation: (kind, where (fraction of the length), what).
fn mutation() -> impl Strategy<Value = (u8, f64, usize)> {
    (0u8..5, 0.0f64..1.0, 0usize..TOKENS.len())
}

fn mutate(mut text: Vec<u8>, mutations: &[(u8, f64, usize)]) -> Vec<u8> {
    for &(kind, at, token) in mutations {
        let i = ((text.len() as f64) * at) as usize;
        let i = i.min(text.len());
        match kind {
            // Insert a token.
            0 => {
                let t = TOKENS[token].as_bytes();
                text.splice(i..i, t.iter().copied());
            }
            // Delete a few bytes.
            1 => {
                let end = (i + 1 + token % 16).min(text.len());
                text.drain(i..end);
            }
            // Duplicate the line there.
            2 => {
                let start = text[..i]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = text[i..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(text.len(), |p| i + p + 1);
                let line = text[start..end].to_vec();
                text.splice(end..end, line);
            }
            // Indent or dedent the line there.
            3 => {
                let start = text[..i]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                if token % 2 == 0 {
                    text.splice(start..start, *b"  ");
                } else if text[start..].starts_with(b"  ") {
                    text.drain(start..start + 2);
                }
            }
            // Replace a byte.
            _ => {
                if i < text.len() {
                    text[i] = TOKENS[token].as_bytes().first().copied().unwrap_or(b'x');
                }
            }
        }
    }
    text
}

#[test]
fn arbitrary_bytes() {
    fuzz(prop::collection::vec(any::<u8>(), 0..600), |bytes| {
        check(vec![("compose.yaml".into(), bytes)], HashMap::new())
    });
}

#[test]
fn the_corpus_mutated() {
    let files = corpus();
    let n = files.len();
    fuzz(
        (0..n, prop::collection::vec(mutation(), 1..8)),
        move |(which, mutations)| {
            let text = mutate(files[which].1.clone(), &mutations);
            check(vec![("compose.yaml".into(), text)], HashMap::new())
        },
    );
}

#[test]
fn env_files_and_interpolation() {
    let line = prop_oneof![
        "[A-Z_]{1,6}=[ -~]{0,12}",
        "export [A-Z_]{1,6}=\"[ -~]{0,12}\"",
        "[A-Z_]{1,6}='[ -~]{0,12}'",
        "#[ -~]{0,10}",
        "[ -~]{0,16}",
    ];
    let reference = prop_oneof![
        "\\$\\{[A-Z_]{1,6}\\}",
        "\\$\\{[A-Z_]{1,6}:-[ -~&&[^}]]{0,8}\\}",
        "\\$\\{[A-Z_]{1,6}-[a-z]{0,4}\\}",
        "\\$\\{[A-Z_]{1,6}:\\?[a-z ]{0,8}\\}",
        "\\$\\{[A-Z_]{1,6}:\\+[a-z]{0,4}\\}",
        "\\$[A-Z_]{1,6}",
        "\\$\\$",
        "\\$\\{",
        "\\$\\{[A-Z_]{1,3}:-\\$\\{[A-Z_]{1,3}\\}\\}",
    ];
    fuzz(
        (
            prop::collection::vec(line, 0..8),
            prop::collection::vec(reference, 1..4),
            prop::collection::hash_map("[A-Z_]{1,6}", "[ -~]{0,10}", 0..4),
        ),
        |(env_lines, refs, environ)| {
            let compose = format!(
                "services:\n  web:\n    image: \"{}\"\n    environment:\n      A: \"{}\"\n    ports: [\"{}:80\"]\n",
                refs[0],
                refs.join(""),
                refs.last().unwrap()
            );
            check(
                vec![
                    ("compose.yaml".into(), compose.into_bytes()),
                    (".env".into(), env_lines.join("\n").into_bytes()),
                ],
                environ,
            )
        },
    );
}
