//! The reading side: any number of readers, also while the control plane writes.

use std::path::{Path, PathBuf};

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

/// How far a reader has read: the next byte of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    offset: u64,
}

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
        let mut out = Vec::new();
        let mut cursor = from;
        let newest = seqs.last().copied();
        for seq in seqs.into_iter().filter(|s| *s >= from.seq) {
            let offset = if seq == from.seq { from.offset } else { 0 };
            // A sealed segment whose index rules it out is not opened.
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
            let buf = match std::fs::read(segment::seg_path(&self.dir, seq)) {
                Ok(b) => b,
                // Removed by retention since it was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut streams = Streams::default();
            // The stream records before `offset` name the streams after it.
            let start = if offset > 0 {
                segment::scan(
                    &buf[..(offset as usize).min(buf.len())],
                    0,
                    &mut streams,
                    |_, _, _, _| {},
                );
                offset as usize
            } else {
                0
            };
            let scanned = segment::scan(
                &buf,
                start.min(buf.len()),
                &mut streams,
                |key, ts, _, text| {
                    if filter.since.is_some_and(|s| ts < s) || filter.until.is_some_and(|u| ts > u)
                    {
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
                },
            );
            cursor = Cursor {
                seq,
                offset: scanned.valid as u64,
            };
        }
        // Stable: lines of one time keep the order they were stored in.
        out.sort_by_key(|e| e.ts);
        Ok((out, cursor))
    }
}
