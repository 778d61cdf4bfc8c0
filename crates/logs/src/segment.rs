//! One segment: scanning its records, and the index sealed beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::{self, Body, Read};
use crate::store::Position;
use crate::StreamKey;

/// `00000042.seg`.
pub fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.seg"))
}

/// `00000042.idx`.
pub fn idx_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.idx"))
}

/// The segment numbers in `dir`, in order.
pub fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// What a segment holds, without reading it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Its size in bytes.
    pub bytes: u64,
    /// Lines (records) it holds.
    pub lines: u64,
    /// Its oldest and newest line, in nanoseconds; `None` while it has none.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Each stream it holds, with its line count.
    pub streams: Vec<StreamCount>,
    /// Where each container's output ended in it, for resuming collection.
    pub positions: BTreeMap<String, Position>,
}

/// A stream of a segment and how many lines it has there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamCount {
    pub service: String,
    pub replica: u32,
    pub container: String,
    pub stream: String,
    pub lines: u64,
}

impl Index {
    /// Counts one line of `key`.
    pub fn add(&mut self, key: &StreamKey, ts: i64, last: Option<(i64, u32)>) {
        self.lines += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        match self.streams.iter_mut().find(|s| {
            s.container == key.container
                && s.stream == key.stream.as_str()
                && s.service == key.service
                && s.replica == key.replica
        }) {
            Some(s) => s.lines += 1,
            None => self.streams.push(StreamCount {
                service: key.service.clone(),
                replica: key.replica,
                container: key.container.clone(),
                stream: key.stream.as_str().into(),
                lines: 1,
            }),
        }
        crate::store::advance(&mut self.positions, key, ts, last);
    }

    /// Whether the segment may hold a line that `wanted` takes, at a time in
    /// `since..=until`.
    pub fn may_hold(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        wanted: impl Fn(&str, u32, &str) -> bool,
    ) -> bool {
        let (Some(first), Some(last)) = (self.first_ts, self.last_ts) else {
            return false;
        };
        since.is_none_or(|s| last >= s)
            && until.is_none_or(|u| first <= u)
            && self
                .streams
                .iter()
                .any(|s| wanted(&s.service, s.replica, &s.stream))
    }

    pub fn load(path: &Path) -> Option<Index> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written beside the segment, whole or not at all.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("idx.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).expect("an index serializes"))?;
        std::fs::rename(tmp, path)
    }
}

/// The streams a segment names, by their id there.
#[derive(Default)]
pub struct Streams {
    by_id: HashMap<u32, Arc<StreamKey>>,
}

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes of whole, sound records from the start.
    pub valid: usize,
    /// True when what follows is damaged rather than merely unfinished.
    pub corrupt: bool,
}

/// Calls `line` for each line record of `buf` from `offset`, naming its stream as the
/// segment's stream records (kept in `streams` between calls) say.
pub fn scan(
    buf: &[u8],
    offset: usize,
    streams: &mut Streams,
    mut line: impl FnMut(&Arc<StreamKey>, i64, Option<(i64, u32)>, &[u8]),
) -> Scanned {
    let mut at = offset;
    loop {
        match record::read(&buf[at..]) {
            Read::Record(body, n) => {
                match body {
                    Body::Stream { id, key } => {
                        streams.by_id.insert(id, Arc::new(key));
                    }
                    Body::Line { id, ts, last, text } => {
                        let Some(key) = streams.by_id.get(&id) else {
                            return Scanned {
                                valid: at,
                                corrupt: true,
                            };
                        };
                        line(key, ts, last, text);
                    }
                }
                at += n;
            }
            Read::Partial => {
                return Scanned {
                    valid: at,
                    corrupt: false,
                }
            }
            Read::Corrupt => {
                return Scanned {
                    valid: at,
                    corrupt: true,
                }
            }
        }
    }
}

/// The index of a segment's bytes, and the stream ids it uses (for appending more).
pub fn index_of(buf: &[u8]) -> (Index, HashMap<StreamKey, u32>, Scanned) {
    let mut index = Index::default();
    let mut streams = Streams::default();
    let scanned = scan(buf, 0, &mut streams, |key, ts, last, _| {
        index.add(key, ts, last)
    });
    index.bytes = scanned.valid as u64;
    let ids = streams
        .by_id
        .into_iter()
        .map(|(id, key)| ((*key).clone(), id))
        .collect();
    (index, ids, scanned)
}
