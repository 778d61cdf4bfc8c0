//! The data path's parsers, fuzzed on the stable toolchain (proptest), whatever bytes
//! arrive and in whatever reads they arrive:
//! - the request-framing check (`Tracker`, which sees client bytes before hyper): no
//!   panic, and its verdict (smuggling or not) the same however the reads split;
//! - the upstream side's response head parser and body decoder, fed a replica's
//!   keep-alive stream of responses: no panic, no hang, and the same heads, bodies
//!   and errors however the reads split; a chunked body decodes to what was encoded.
//!
//! Streams are built from the cases that matter (`Content-Length`, `Transfer-Encoding`,
//! both, duplicates, odd spacing and case; chunk sizes with extensions, bad sizes,
//! trailers; interim and bodiless statuses) and from raw bytes, then cut at random
//! points. The driver (`shoal_testkit::fuzz`) runs `FUZZ_CASES` cases per target
//! (default 64), or for `FUZZ_SECONDS`: `scripts/fuzz.sh proxy` runs each for 10
//! minutes. The smallest failing stream is kept in `tests/corpus/<target>/`, which
//! `the_kept_corpus_replays` runs in every suite.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use hyper::Method;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shoal_proxy::fuzzing::{parse_response_head, Decoded, Decoder, Tracker};
use shoal_testkit::fuzz::{corpus, fuzz, fuzz_streams, pieces};

/// Where a target keeps its failing streams.
fn kept(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

/// The check's verdict on `stream` fed in reads cut at `cuts`.
fn verdict(stream: &[u8], cuts: &[usize]) -> bool {
    let poisoned = Arc::new(AtomicBool::new(false));
    let mut t = Tracker::new(poisoned.clone());
    for piece in pieces(stream, cuts) {
        t.feed(piece);
    }
    poisoned.load(Ordering::Relaxed)
}

/// What the upstream side makes of a replica's `stream` read in pieces cut at `cuts`:
/// each response's status, framing and whole body, in order, then how it ended.
fn responses(stream: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut reads = pieces(stream, cuts).into_iter();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut body: Option<(Decoder, Vec<u8>)> = None;
    loop {
        let progressed = match &mut body {
            None => match parse_response_head(&mut buf, &Method::GET) {
                Ok(Some(head)) => {
                    out.push(format!(
                        "{} {:?} keep-alive {}",
                        head.parts.status, head.framing, head.keep_alive
                    ));
                    body = Some((Decoder::new(head.framing), Vec::new()));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out;
                }
            },
            Some((decoder, data)) => match decoder.decode(&mut buf) {
                Ok(Decoded::Data(piece)) => {
                    assert!(!piece.is_empty(), "an empty piece of body");
                    data.extend_from_slice(&piece);
                    true
                }
                Ok(Decoded::End) => {
                    out.push(format!("body {:?}", String::from_utf8_lossy(data)));
                    body = None;
                    true
                }
                Ok(Decoded::More) => false,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out;
                }
            },
        };
        if progressed {
            continue;
        }
        if let Some(read) = reads.next() {
            buf.extend_from_slice(read);
            continue;
        }
        match &mut body {
            None if buf.is_empty() => out.push("end".into()),
            None => out.push("end in a head".into()),
            Some((decoder, _)) => match decoder.end_of_input() {
                Ok(()) => continue,
                Err(e) => out.push(format!("error: {e}")),
            },
        }
        return out;
    }
}

/// `parse` of `stream` whole, cut at `cuts`, and a byte at a time: no panic, and one
/// outcome.
fn same_however_split<T: PartialEq + std::fmt::Debug>(
    parse: fn(&[u8], &[usize]) -> T,
    stream: &[u8],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let shown = || String::from_utf8_lossy(stream).into_owned();
    let whole = std::panic::catch_unwind(|| parse(stream, &[]))
        .map_err(|_| TestCaseError::fail(format!("panicked on {:?}", shown())))?;
    let split = std::panic::catch_unwind(|| parse(stream, cuts))
        .map_err(|_| TestCaseError::fail(format!("panicked on {:?} cut at {cuts:?}", shown())))?;
    let bytewise =
        std::panic::catch_unwind(|| parse(stream, &(0..stream.len()).collect::<Vec<_>>()))
            .map_err(|_| {
                TestCaseError::fail(format!("panicked a byte at a time on {:?}", shown()))
            })?;
    prop_assert_eq!(
        &whole,
        &split,
        "the outcome depends on the reads: {:?} cut at {:?}",
        shown(),
        cuts
    );
    prop_assert_eq!(&whole, &bytewise, "a byte at a time differs: {:?}", shown());
    Ok(())
}

fn requests_check((stream, cuts): (Vec<u8>, Vec<usize>)) -> Result<(), TestCaseError> {
    same_however_split(verdict, &stream, &cuts)
}

fn responses_check((stream, cuts): (Vec<u8>, Vec<usize>)) -> Result<(), TestCaseError> {
    same_however_split(responses, &stream, &cuts)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..8)
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
        // Framing lines about as long as the decoder's limit (4 KiB).
        (4080usize..4110).prop_map(|n| format!("1;{}\r\nx\r\n", "e".repeat(n)).into_bytes()),
        (4080usize..4110).prop_map(|n| format!("0\r\nx: {}\r\n\r\n", "t".repeat(n)).into_bytes()),
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

/// A response: a status line (interim, bodiless, odd), headers, the blank line, a body.
fn response() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("HTTP/1.1 200 OK\r\n".to_string()),
            Just("HTTP/1.0 200 OK\r\n".to_string()),
            Just("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n".to_string()),
            Just("HTTP/1.1 204 No Content\r\n".to_string()),
            Just("HTTP/1.1 304 Not Modified\r\n".to_string()),
            Just("HTTP/1.1 101 Switching Protocols\r\n".to_string()),
            Just("HTTP/1.1 503 \r\n".to_string()),
            Just("HTTP/1.1 999 What\r\n".to_string()),
            Just("HTTP/1.1 2000 Too Long\r\n".to_string()),
            Just("HTTP/2 200\r\n".to_string()),
            "[ -~]{0,20}\r\n",
        ],
        prop::collection::vec(header(), 0..5),
        body(),
    )
        .prop_map(|(line, headers, body)| {
            let mut r = format!("{line}{}\r\n", headers.concat()).into_bytes();
            r.extend(body);
            r
        })
}

#[test]
fn requests_built_from_the_framing_cases() {
    fuzz_streams(
        &kept("requests"),
        (
            prop::collection::vec(request(), 1..4).prop_map(|r| r.concat()),
            cuts(),
        ),
        requests_check,
    );
}

#[test]
fn arbitrary_bytes() {
    fuzz_streams(
        &kept("requests"),
        (prop::collection::vec(any::<u8>(), 0..512), cuts()),
        requests_check,
    );
}

#[test]
fn responses_built_from_the_framing_cases() {
    fuzz_streams(
        &kept("responses"),
        (
            prop::collection::vec(response(), 1..4).prop_map(|r| r.concat()),
            cuts(),
        ),
        responses_check,
    );
}

#[test]
fn arbitrary_response_bytes() {
    fuzz_streams(
        &kept("responses"),
        (prop::collection::vec(any::<u8>(), 0..512), cuts()),
        responses_check,
    );
}

#[test]
fn chunked_bodies_decode_to_what_was_encoded() {
    let chunk = (
        prop::collection::vec(any::<u8>(), 1..64),
        "(;[a-z]{1,5}(=[a-z0-9\"]{0,5})?)?",
    );
    let trailers = prop::collection::vec("[a-z]{1,8}: [ -~]{0,10}\r\n", 0..3);
    fuzz(
        (prop::collection::vec(chunk, 0..6), trailers, cuts()),
        |(chunks, trailers, cuts)| {
            let mut stream = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            let mut data = Vec::new();
            for (bytes, ext) in &chunks {
                stream.extend(format!("{:X}{ext}\r\n", bytes.len()).into_bytes());
                stream.extend_from_slice(bytes);
                stream.extend_from_slice(b"\r\n");
                data.extend_from_slice(bytes);
            }
            stream.extend(format!("0\r\n{}\r\n", trailers.concat()).into_bytes());
            stream.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
            let seen = responses(&stream, &cuts);
            let expected = vec![
                "200 OK Chunked keep-alive true".to_string(),
                format!("body {:?}", String::from_utf8_lossy(&data)),
                "204 No Content Length(0) keep-alive true".to_string(),
                "body \"\"".to_string(),
                "end".to_string(),
            ];
            prop_assert_eq!(seen, expected);
            Ok(())
        },
    );
}

#[test]
fn the_kept_corpus_replays() {
    let mut replayed = 0;
    for (target, check) in [
        ("requests", requests_check as fn(_) -> _),
        ("responses", responses_check),
    ] {
        for (path, stream) in corpus(&kept(target)) {
            let len = stream.len();
            if let Err(e) = check((stream, vec![len / 2, len / 3])) {
                panic!("{}: {e}", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "the corpus is beside the tests");
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
