//! The fuzz driver of shoal's stable-toolchain fuzz targets (proptest): each target
//! runs `FUZZ_CASES` cases (default 64, to keep the suite quick), or for
//! `FUZZ_SECONDS` when that is set (scripts/fuzz.sh runs each for 10 minutes). A
//! target fed one byte stream keeps the smallest failing stream proptest found in its
//! corpus directory, which the suite replays.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Runs `test` on `strategy`; panics with the smallest failing input.
pub fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Debug,
{
    if let Err(e) = run(&strategy, &test) {
        panic!("{e}");
    }
}

/// Runs `test` on byte streams (each with the points its reads are cut at); the
/// smallest failing stream is saved into `corpus` before the panic.
pub fn fuzz_streams<S>(
    corpus: &Path,
    strategy: S,
    test: impl Fn((Vec<u8>, Vec<usize>)) -> Result<(), TestCaseError>,
) where
    S: Strategy<Value = (Vec<u8>, Vec<usize>)>,
{
    let Err(e) = run(&strategy, &test) else {
        return;
    };
    if let TestError::Fail(_, (stream, _)) = &e {
        std::fs::create_dir_all(corpus).expect("the corpus directory can be made");
        let path = corpus.join(format!("{:016x}", fnv(stream)));
        std::fs::write(&path, stream).expect("the corpus is writable");
        eprintln!("kept as {}", path.display());
    }
    panic!("{e}");
}

fn run<S: Strategy>(
    strategy: &S,
    test: &impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), TestError<S::Value>>
where
    S::Value: Debug,
{
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let deadline = env("FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let cases = env("FUZZ_CASES").unwrap_or(64) as u32;
    let mut batches = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: if deadline.is_some() { 256 } else { cases },
            failure_persistence: None,
            ..Config::default()
        });
        runner.run(strategy, test)?;
        batches += 1;
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    eprintln!("fuzzed {batches} batches");
    Ok(())
}

/// The streams kept in `corpus`, by file.
pub fn corpus(corpus: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(corpus) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = dir
        .map(|e| e.expect("the corpus is readable").path())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("the corpus is readable");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// `stream` in the reads that cutting it at `cuts` (any order, taken modulo its
/// length) gives.
pub fn pieces<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for c in cuts.into_iter().chain([stream.len()]) {
        out.push(&stream[at..c]);
        at = c;
    }
    out
}

/// FNV-1a: a stable name for a kept stream.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
