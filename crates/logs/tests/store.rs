//! The store on disk: what is appended reads back, in order and filtered; segments
//! rotate and go by size; a torn tail is cut at open and nothing before it is lost;
//! collection positions survive a restart.

use std::time::Duration;

use shoal_logs::{Cursor, Filter, Limits, Position, Reader, Store, Stream, StreamKey, Tail};

fn key(service: &str, replica: u32, container: &str, stream: Stream) -> StreamKey {
    StreamKey {
        service: service.into(),
        replica,
        container: container.into(),
        stream,
    }
}

const T0: i64 = 1_796_000_000_000_000_000;

fn texts(entries: &[shoal_logs::Entry]) -> Vec<String> {
    entries.iter().map(|e| e.text.clone()).collect()
}

#[test]
fn lines_read_back_in_time_order_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), Limits::default()).unwrap();
    let web1 = key("web", 1, "c1", Stream::Stdout);
    let web1e = key("web", 1, "c1", Stream::Stderr);
    let web2 = key("web", 2, "c2", Stream::Stdout);
    let db = key("db", 1, "c3", Stream::Stdout);
    s.append(&web1, T0 + 3, None, "web1 three").unwrap();
    s.append(&web2, T0 + 1, None, "web2 one").unwrap();
    s.append(&web1e, T0 + 2, None, "web1 ERROR two").unwrap();
    s.append(&db, T0 + 4, None, "db four").unwrap();
    s.append(
        &key("web", 1, "c1", Stream::Event),
        T0 + 5,
        None,
        "restarted",
    )
    .unwrap();
    s.flush().unwrap();

    let r = Reader::open(dir.path());
    let all = |f: Filter| texts(&r.read(&f).unwrap().0);
    assert_eq!(
        all(Filter::default()),
        ["web2 one", "web1 ERROR two", "web1 three", "db four"]
    );
    assert_eq!(
        all(Filter {
            services: vec!["web".into()],
            replica: Some(1),
            ..Filter::default()
        }),
        ["web1 ERROR two", "web1 three"]
    );
    assert_eq!(
        all(Filter {
            streams: vec![Stream::Stderr],
            ..Filter::default()
        }),
        ["web1 ERROR two"]
    );
    assert_eq!(
        all(Filter {
            since: Some(T0 + 2),
            until: Some(T0 + 3),
            ..Filter::default()
        }),
        ["web1 ERROR two", "web1 three"]
    );
    assert_eq!(
        all(Filter {
            grep: Some(
                regex::bytes::RegexBuilder::new("error")
                    .case_insensitive(true)
                    .build()
                    .unwrap()
            ),
            ..Filter::default()
        }),
        ["web1 ERROR two"]
    );
    assert_eq!(
        all(Filter {
            streams: vec![Stream::Event],
            ..Filter::default()
        }),
        ["restarted"]
    );
}

#[test]
fn a_reader_follows_what_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_bytes: 300,
        ..Limits::default()
    };
    let mut s = Store::open(dir.path(), limits).unwrap();
    let k = key("web", 1, "c1", Stream::Stdout);
    s.append(&k, T0, None, "first").unwrap();
    s.flush().unwrap();
    let r = Reader::open(dir.path());
    let (got, cursor) = r.read(&Filter::default()).unwrap();
    assert_eq!(texts(&got), ["first"]);
    // Across a rotation too.
    for i in 0..20 {
        s.append(&k, T0 + 1 + i, None, &format!("line {i}"))
            .unwrap();
    }
    s.flush().unwrap();
    let (got, cursor) = r.read_from(cursor, &Filter::default()).unwrap();
    assert_eq!(got.len(), 20);
    assert_eq!(got[0].text, "line 0");
    let (got, _) = r.read_from(cursor, &Filter::default()).unwrap();
    assert!(got.is_empty());
}

#[test]
fn old_segments_go_by_size_and_the_newest_stay() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_bytes: 4096,
        max_bytes: 16 * 1024,
        max_age: Duration::from_secs(3600 * 24 * 365 * 100),
    };
    let mut s = Store::open(dir.path(), limits).unwrap();
    let k = key("web", 1, "c1", Stream::Stdout);
    let now = shoal_logs::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
    for i in 0..5000 {
        s.append(
            &k,
            now + i,
            None,
            &format!("line {i:05} {}", "x".repeat(40)),
        )
        .unwrap();
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        // Never more than the limit plus the segment being written (and the small
        // index files).
        assert!(
            on_disk <= 16 * 1024 + 4096 + 2048,
            "{on_disk} bytes at line {i}"
        );
    }
    s.flush().unwrap();
    let got = Reader::open(dir.path()).read(&Filter::default()).unwrap().0;
    assert!(got.len() < 5000 && got.len() > 200, "{}", got.len());
    assert!(got.last().unwrap().text.starts_with("line 04999"));
    // What is kept is a contiguous tail.
    let first: usize = got[0].text[5..10].parse().unwrap();
    assert_eq!(got.len(), 5000 - first);
}

#[test]
fn old_segments_go_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_bytes: 200,
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(3600),
    };
    // Sealing applies the limits at the real time: the lines are dated from it.
    let now = shoal_logs::now_nanos();
    let hour = 3_600_000_000_000i64;
    let mut s = Store::open(dir.path(), limits).unwrap();
    let k = key("web", 1, "c1", Stream::Stdout);
    for i in 0..10 {
        s.append(
            &k,
            now - 3 * hour + i,
            None,
            &format!("old {i} {}", "x".repeat(50)),
        )
        .unwrap();
    }
    for i in 0..10 {
        s.append(
            &k,
            now - hour / 2 + i,
            None,
            &format!("new {i} {}", "x".repeat(50)),
        )
        .unwrap();
    }
    s.flush().unwrap();
    s.retain(now).unwrap();
    let got = texts(&Reader::open(dir.path()).read(&Filter::default()).unwrap().0);
    // Segments go whole: only the old lines sharing a segment with new ones stay.
    let old = got.iter().filter(|t| t.starts_with("old")).count();
    let new = got.iter().filter(|t| t.starts_with("new")).count();
    assert_eq!(new, 10, "{got:?}");
    assert!(old <= 2, "{got:?}");
}

#[test]
fn a_torn_tail_is_cut_and_nothing_before_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("web", 1, "c1", Stream::Stdout);
    {
        let mut s = Store::open(dir.path(), Limits::default()).unwrap();
        for i in 0..100 {
            s.append(&k, T0 + i, None, &format!("line {i}")).unwrap();
        }
    }
    let seg = dir.path().join("00000001.seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    // Cut the last record in half, as a crash in the middle of a write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let mut s = Store::open(dir.path(), Limits::default()).unwrap();
    assert_eq!(
        s.position("c1"),
        Some(Position {
            ts: T0 + 98,
            at_ts: 1
        })
    );
    s.append(&k, T0 + 99, None, "line 99 again").unwrap();
    s.flush().unwrap();
    let got = Reader::open(dir.path()).read(&Filter::default()).unwrap().0;
    assert_eq!(got.len(), 100);
    assert_eq!(got[98].text, "line 98");
    assert_eq!(got[99].text, "line 99 again");
}

#[test]
fn positions_survive_a_restart_and_count_lines_of_one_time() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("web", 1, "c1", Stream::Stdout);
    let limits = Limits {
        segment_bytes: 150,
        ..Limits::default()
    };
    {
        let mut s = Store::open(dir.path(), limits).unwrap();
        for i in 0..10 {
            s.append(&k, T0 + i, None, "x").unwrap();
        }
        s.append(&k, T0 + 10, None, "same time a").unwrap();
        s.append(
            &key("web", 1, "c1", Stream::Stderr),
            T0 + 10,
            None,
            "same time b",
        )
        .unwrap();
        // Three lines joined, the last two at +12.
        s.append(&k, T0 + 11, Some((T0 + 12, 2)), "trace\n  at a\n  at b")
            .unwrap();
    }
    // A missing index is rebuilt.
    std::fs::remove_file(dir.path().join("00000001.idx")).unwrap();
    let s = Store::open(dir.path(), limits).unwrap();
    let p = s.position("c1").unwrap();
    assert_eq!(
        p,
        Position {
            ts: T0 + 12,
            at_ts: 2
        }
    );
    assert!(p.covers(T0 + 12, 1) && !p.covers(T0 + 12, 2) && !p.covers(T0 + 13, 0));
    assert_eq!(s.position("c9"), None);
    let mut at_ten = Position::default();
    at_ten.advance(T0 + 10, None);
    at_ten.advance(T0 + 10, None);
    assert_eq!(
        at_ten,
        Position {
            ts: T0 + 10,
            at_ts: 2
        }
    );
}

#[test]
fn a_tail_reads_in_stored_order_in_bounded_batches_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_bytes: 4096,
        ..Limits::default()
    };
    let mut s = Store::open(dir.path(), limits).unwrap();
    let out = key("web", 1, "c1", Stream::Stdout);
    let err = key("web", 1, "c1", Stream::Stderr);
    for i in 0..500 {
        let k = if i % 3 == 0 { &err } else { &out };
        s.append(k, T0 + i, None, &format!("line {i:04}")).unwrap();
    }
    s.flush().unwrap();

    let mut tail = Tail::new(dir.path(), Cursor::default());
    let mut seen = Vec::new();
    let mut batches = 0;
    loop {
        let batch = tail.next(1000).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() < 100, "a batch is bounded: {}", batch.len());
        batches += 1;
        seen.extend(batch);
    }
    assert!(batches > 10);
    let want: Vec<String> = (0..500).map(|i| format!("line {i:04}")).collect();
    assert_eq!(texts(&seen), want);
    assert_eq!(seen[0].key.stream, Stream::Stderr);
    assert_eq!(seen[1].key.stream, Stream::Stdout);

    // A cursor kept on disk resumes where it stood, also mid-segment.
    let saved = serde_json::to_string(&tail.cursor()).unwrap();
    for i in 500..520 {
        s.append(&out, T0 + i, None, &format!("line {i:04}"))
            .unwrap();
    }
    s.flush().unwrap();
    let mut again = Tail::new(dir.path(), serde_json::from_str(&saved).unwrap());
    let rest = again.next(1 << 20).unwrap();
    assert_eq!(
        texts(&rest),
        (500..520)
            .map(|i| format!("line {i:04}"))
            .collect::<Vec<_>>()
    );
    let mid = again.cursor();
    s.append(&err, T0 + 520, None, "line 0520").unwrap();
    s.flush().unwrap();
    let mut from_mid = Tail::new(dir.path(), mid);
    let last = from_mid.next(1 << 20).unwrap();
    assert_eq!(texts(&last), ["line 0520"]);
    assert_eq!(
        last[0].key.stream,
        Stream::Stderr,
        "streams named before the cursor"
    );

    // A record larger than the batch comes alone.
    let big = "x".repeat(10_000);
    s.append(&out, T0 + 600, None, &big).unwrap();
    s.flush().unwrap();
    assert_eq!(from_mid.next(100).unwrap()[0].text.len(), 10_000);
}
