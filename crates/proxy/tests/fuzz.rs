//! The request-framing check ([`Tracker`]), fuzzed on the stable toolchain
//! (proptest): whatever bytes a client sends, in whatever reads they arrive, it must
//! not panic, and its verdict (smuggling or not) must not depend on where the reads
//! split. Streams are built from request heads whose framing headers are drawn from
//! the cases that matter (`Content-Length`, `Transfer-Encoding`, both, duplicates,
//! odd spacing and case), bodies that follow or break their framing (chunk sizes with
//! extensions, bad sizes, trailers), and raw bytes; then split at random points.
//!
//! Each target runs `FUZZ_CASES` cases (default 64), or for `FUZZ_SECONDS` when set:
//! `scripts/fuzz.sh proxy` runs each for 10 minutes. A failure prints the smallest
//! stream proptest found: keep it as a case in `the_found_cases_stay_found`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shoal_proxy::fuzzing::Tracker;

/// The verdict on `stream` fed in reads cut at `cuts` (positions, any order).
fn verdict(stream: &[u8], cuts: &[usize]) -> bool {
    let poisoned = Arc::new(AtomicBool::new(false));
    let mut t = Tracker::new(poisoned.clone());
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut at = 0;
    for c in cuts.into_iter().chain([stream.len()]) {
        t.feed(&stream[at..c.max(at)]);
        at = c.max(at);
    }
    poisoned.load(Ordering::Relaxed)
}

fn check(stream: Vec<u8>, cuts: Vec<usize>) -> Result<(), TestCaseError> {
    let whole = std::panic::catch_unwind(|| verdict(&stream, &[])).map_err(|_| {
        TestCaseError::fail(format!(
            "panicked on {:?}",
            String::from_utf8_lossy(&stream)
        ))
    })?;
    let split = std::panic::catch_unwind(|| verdict(&stream, &cuts))
        .map_err(|_| TestCaseError::fail("panicked on a split read"))?;
    let bytewise = verdict(&stream, &(0..stream.len()).collect::<Vec<_>>());
    prop_assert_eq!(
        whole,
        split,
        "the verdict depends on the reads: {:?} cut at {:?}",
        String::from_utf8_lossy(&stream),
        cuts
    );
    prop_assert_eq!(
        whole,
        bytewise,
        "a byte at a time differs: {:?}",
        String::from_utf8_lossy(&stream)
    );
    Ok(())
}

/// Runs `test` on `strategy` for `FUZZ_SECONDS`, or `FUZZ_CASES` cases.
fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let deadline = env("FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let cases = env("FUZZ_CASES").unwrap_or(64) as u32;
    let mut batches = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: if deadline.is_some() { 1024 } else { cases },
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        batches += 1;
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    eprintln!("{batches} batches passed");
}

/// A framing header line, or another header.
fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| format!("Content-Length: {n}\r\n")),
        Just("content-length:  3 \r\n".to_string()),
        Just("Content-Length: 3, 3\r\n".to_string()),
        Just("Content-Length: -1\r\n".to_string()),
        Just("Transfer-Encoding: chunked\r\n".to_string()),
        Just("transfer-encoding: gzip, chunked\r\n".to_string()),
        Just("Transfer-Encoding : chunked\r\n".to_string()),
        Just("Transfer-Encoding:\tchunked\r\n".to_string()),
        Just("Transfer-Encoding: identity\r\n".to_string()),
        Just("Connection: upgrade\r\nUpgrade: websocket\r\n".to_string()),
        "[A-Za-z-]{1,12}: [ -~]{0,20}\r\n",
        "[ -~]{0,30}\r?\n",
    ]
}

/// A body: chunks (sizes in hex, with extensions, sometimes wrong), bytes, trailers.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        (0usize..40, "(;[a-z]{1,5}(=[a-z0-9]{0,5})?)?").prop_map(|(n, ext)| {
            let mut c = format!("{n:x}{ext}\r\n").into_bytes();
            c.extend(std::iter::repeat_n(b'x', n));
            c.extend_from_slice(b"\r\n");
            c
        }),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"0\r\nX-Trailer: 1\r\n\r\n".to_vec()),
        Just(b"fffffffffffffffffff\r\n".to_vec()),
        Just(b"zz\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(chunk, 0..6).prop_map(|c| c.concat())
}

/// A request: a request line, headers, the blank line, a body.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("GET / HTTP/1.1\r\n"),
            Just("POST /echo HTTP/1.1\r\n"),
            Just("CONNECT host:443 HTTP/1.1\r\n"),
            Just("\r\nPUT /x HTTP/1.0\r\n"),
        ],
        prop::collection::vec(header(), 0..5),
        body(),
    )
        .prop_map(|(line, headers, body)| {
            let mut r = format!("{line}Host: a\r\n{}\r\n", headers.concat()).into_bytes();
            r.extend(body);
            r
        })
}

#[test]
fn requests_built_from_the_framing_cases() {
    fuzz(
        (
            prop::collection::vec(request(), 1..4).prop_map(|r| r.concat()),
            prop::collection::vec(any::<usize>(), 0..8),
        ),
        |(stream, cuts)| check(stream, cuts),
    );
}

#[test]
fn arbitrary_bytes() {
    fuzz(
        (
            prop::collection::vec(any::<u8>(), 0..512),
            prop::collection::vec(any::<usize>(), 0..8),
        ),
        |(stream, cuts)| check(stream, cuts),
    );
}

#[test]
fn the_found_cases_stay_found() {
    // Both framings: smuggling, however it arrives.
    let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    for cuts in [vec![], vec![10], vec![40, 41, 42]] {
        assert!(verdict(both, &cuts), "cut at {cuts:?}");
    }
    let fine = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(!verdict(fine, &[]));
    assert!(!verdict(fine, &(0..fine.len()).collect::<Vec<_>>()));
}
