//! The reading side: any number of readers, also while the control plane writes.

use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::segment::{self, Index, Streams};
use crate::{Entry, Stream};

/// Which lines a query wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Services; all when empty.
    pub services: Vec<String>,
    /// One replica number.
    pub replica: Option<u32>,
    /// Streams; stdout and stderr when empty.
    pub streams: Vec<Stream>,
    /// From this time on (nanoseconds), inclusive.
    pub since: Option<i64>,
    /// Up to this time, inclusive.
    pub until: Option<i64>,
    /// Lines that match (on their bytes, so invalid UTF-8 matches too).
    pub grep: Option<regex::bytes::Regex>,
}

impl Filter {
    /// Whether `entry` is one of the lines wanted.
    pub fn matches(&self, entry: &Entry) -> bool {
        self.since.is_none_or(|s| entry.ts >= s)
            && self.until.is_none_or(|u| entry.ts <= u)
            && self.wants(
                &entry.key.service,
                entry.key.replica,
                entry.key.stream.as_str(),
            )
            && self
                .grep
                .as_ref()
                .is_none_or(|re| re.is_match(entry.text.as_bytes()))
    }

    fn wants(&self, service: &str, replica: u32, stream: &str) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == service))
            && self.replica.is_none_or(|r| r == replica)
            && if self.streams.is_empty() {
                stream != Stream::Event.as_str()
            } else {
                self.streams.iter().any(|s| s.as_str() == stream)
            }
    }
}

/// How far a reader has read: the next byte of a segment. A forwarder keeps one on
/// disk (it serializes as `{"seq":3,"offset":1024}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    seq: u64,
    offset: u64,
}

/// What a segment read gives: the lines wanted and the length of its sound records,
/// or `None` when the segment was removed meanwhile.
type SegmentRead = std::io::Result<Option<(Vec<Entry>, usize)>>;

/// A reader of a store directory.
pub struct Reader {
    dir: PathBuf,
}

impl Reader {
    /// A reader of the store in `dir` (which may not exist yet: it reads as empty).
    pub fn open(dir: &Path) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
        }
    }

    /// Every line `filter` wants, in time order, and where reading stopped.
    pub fn read(&self, filter: &Filter) -> std::io::Result<(Vec<Entry>, Cursor)> {
        self.read_from(Cursor::default(), filter)
    }

    /// The lines `filter` wants written after `from`, in time order, and the cursor
    /// after them. A record still being written is left for the next call.
    pub fn read_from(
        &self,
        from: Cursor,
        filter: &Filter,
    ) -> std::io::Result<(Vec<Entry>, Cursor)> {
        let seqs = match segment::list(&self.dir) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), from)),
            Err(e) => return Err(e),
        };
        let mut cursor = from;
        let newest = seqs.last().copied();
        // The segments to open: a sealed one whose index rules it out is not.
        let mut wanted = Vec::new();
        for seq in seqs.into_iter().filter(|s| *s >= from.seq) {
            let offset = if seq == from.seq { from.offset } else { 0 };
            if Some(seq) != newest && offset == 0 {
                if let Some(index) = Index::load(&segment::idx_path(&self.dir, seq)) {
                    if !index.may_hold(filter.since, filter.until, |s, r, st| {
                        filter.wants(s, r, st)
                    }) {
                        cursor = Cursor {
                            seq,
                            offset: index.bytes,
                        };
                        continue;
                    }
                }
            }
            wanted.push((seq, offset));
        }
        // Segments are scanned side by side, a core each.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
            .min(wanted.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<(usize, SegmentRead)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&(seq, offset)) = wanted.get(i) else {
                                return done;
                            };
                            done.push((i, self.read_segment(seq, offset, filter)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a segment scan panicked"))
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (i, result) in results {
            // Removed by retention since it was listed: skipped.
            if let Some((entries, valid)) = result? {
                out.extend(entries);
                cursor = Cursor {
                    seq: wanted[i].0,
                    offset: valid as u64,
                };
            }
        }
        // Stable: lines of one time keep the order they were stored in.
        out.sort_by_key(|e| e.ts);
        Ok((out, cursor))
    }

    /// The lines `filter` wants in segment `seq` from `offset`, and the length of its
    /// sound records; `None` when the segment is gone.
    fn read_segment(&self, seq: u64, offset: u64, filter: &Filter) -> SegmentRead {
        let buf = match std::fs::read(segment::seg_path(&self.dir, seq)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut streams = Streams::default();
        // The stream records before `offset` name the streams after it.
        let start = (offset as usize).min(buf.len());
        if start > 0 {
            segment::scan(&buf[..start], 0, &mut streams, |_, _, _, _| {});
        }
        let mut out = Vec::new();
        let scanned = segment::scan(&buf, start, &mut streams, |key, ts, _, text| {
            if filter.since.is_some_and(|s| ts < s) || filter.until.is_some_and(|u| ts > u) {
                return;
            }
            if !filter.wants(&key.service, key.replica, key.stream.as_str()) {
                return;
            }
            if filter.grep.as_ref().is_some_and(|re| !re.is_match(text)) {
                return;
            }
            out.push(Entry {
                key: key.clone(),
                ts,
                text: String::from_utf8_lossy(text).into_owned(),
            });
        });
        Ok(Some((out, scanned.valid)))
    }
}

/// Reads a store in the order it was written, a bounded batch at a time, from a
/// cursor on: what follows a store (`shoal logs -f`) and what forwards it.
pub struct Tail {
    dir: PathBuf,
    cursor: Cursor,
    /// The streams of the cursor's segment, read up to the cursor.
    streams: Option<Streams>,
}

impl Tail {
    /// A tail of the store in `dir` from `cursor` on.
    pub fn new(dir: &Path, cursor: Cursor) -> Tail {
        Tail {
            dir: dir.to_path_buf(),
            cursor,
            streams: None,
        }
    }

    /// Where the next batch starts.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The records stored after the cursor, about `max_bytes` of them (a single record
    /// larger than that comes alone), and moves the cursor past them. Empty when the
    /// reader is at the end. The cursor skips segments removed by the limits.
    pub fn next(&mut self, max_bytes: usize) -> std::io::Result<Vec<Entry>> {
        loop {
            let seqs = match segment::list(&self.dir) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let Some(&seq) = seqs.iter().find(|s| **s >= self.cursor.seq) else {
                return Ok(Vec::new());
            };
            if seq != self.cursor.seq {
                self.cursor = Cursor { seq, offset: 0 };
                self.streams = None;
            }
            let newer = seqs.last().is_some_and(|l| *l > seq);
            let path = segment::seg_path(&self.dir, seq);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let streams = match &mut self.streams {
                Some(s) => s,
                None => {
                    // The stream records before the cursor name the streams after it.
                    let mut head = vec![0; self.cursor.offset as usize];
                    file.read_exact(&mut head)?;
                    let mut s = Streams::default();
                    segment::scan(&head, 0, &mut s, |_, _, _, _| {});
                    self.streams.insert(s)
                }
            };
            file.seek(SeekFrom::Start(self.cursor.offset))?;
            let mut want = max_bytes.max(256);
            loop {
                let mut buf = Vec::with_capacity(want);
                (&mut file).take(want as u64).read_to_end(&mut buf)?;
                let mut out = Vec::new();
                let scanned = segment::scan(&buf, 0, streams, |key, ts, _, text| {
                    out.push(Entry {
                        key: key.clone(),
                        ts,
                        text: String::from_utf8_lossy(text).into_owned(),
                    })
                });
                if scanned.valid == 0 && buf.len() == want && !scanned.corrupt {
                    // One record larger than the batch: read it whole.
                    want *= 2;
                    file.seek(SeekFrom::Start(self.cursor.offset))?;
                    continue;
                }
                self.cursor.offset += scanned.valid as u64;
                if scanned.valid > 0 || !newer {
                    return Ok(out);
                }
                break;
            }
            // At the end of a sealed segment: the next one.
            self.cursor = Cursor {
                seq: seq + 1,
                offset: 0,
            };
            self.streams = None;
        }
    }
}
