//! The writing side: one per store, the control plane's.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record;
use crate::segment::{self, Index};
use crate::{Limits, Stream, StreamKey};

/// Where a container's output stands in the store: the time of its last stored line,
/// and how many stored lines have exactly that time. Collection resumes after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// Lines stored at exactly `ts`.
    pub at_ts: u32,
}

impl Position {
    /// After a record whose first line is at `ts` (and, for joined lines, whose last is
    /// at `last.0`, `last.1` of them at that time).
    pub fn advance(&mut self, ts: i64, last: Option<(i64, u32)>) {
        let (end, n, all_at_end) = match last {
            None => (ts, 1, true),
            Some((end, n)) => (end, n, end == ts),
        };
        if all_at_end && end == self.ts {
            self.at_ts += n;
        } else {
            *self = Position { ts: end, at_ts: n };
        }
    }

    /// Whether a line at `ts`, the `nth_at_ts` (0-based) of that time met again, is
    /// already stored.
    pub fn covers(&self, ts: i64, nth_at_ts: u32) -> bool {
        ts < self.ts || (ts == self.ts && nth_at_ts < self.at_ts)
    }
}

struct Active {
    seq: u64,
    file: File,
    /// Bytes in the file.
    len: u64,
    index: Index,
    ids: HashMap<StreamKey, u32>,
}

/// The writer of a store directory.
pub struct Store {
    dir: PathBuf,
    limits: Limits,
    /// Sealed segments, oldest first, with their indexes.
    sealed: Vec<(u64, Index)>,
    active: Active,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    positions: BTreeMap<String, Position>,
}

/// Appends to the buffer are written out once it holds this much (and on
/// [`Store::flush`]).
const BUFFER: usize = 1 << 20;

impl Store {
    /// Opens (or creates) the store in `dir`: loads each sealed segment's index
    /// (rebuilding a missing or damaged one), and cuts a torn record off the end of
    /// the newest segment, which it goes on appending to.
    pub fn open(dir: &Path, limits: Limits) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let seqs = segment::list(dir)?;
        let mut sealed = Vec::new();
        let mut positions = BTreeMap::new();
        let (last, older) = match seqs.split_last() {
            Some((last, older)) => (*last, older),
            None => (1, &[][..]),
        };
        for &seq in older {
            let idx = segment::idx_path(dir, seq);
            let index = match Index::load(&idx) {
                Some(i) => i,
                None => {
                    let buf = std::fs::read(segment::seg_path(dir, seq))?;
                    let (index, _, _) = segment::index_of(&buf);
                    index.save(&idx)?;
                    index
                }
            };
            positions.extend(index.positions.iter().map(|(c, p)| (c.clone(), *p)));
            sealed.push((seq, index));
        }
        let path = segment::seg_path(dir, last);
        let buf = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (index, ids, scanned) = segment::index_of(&buf);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if scanned.valid < buf.len() {
            // A record torn by a crash (or damaged at the end): cut it.
            file.set_len(scanned.valid as u64)?;
        }
        positions.extend(index.positions.iter().map(|(c, p)| (c.clone(), *p)));
        let mut store = Store {
            dir: dir.to_path_buf(),
            limits,
            sealed,
            active: Active {
                seq: last,
                file,
                len: scanned.valid as u64,
                index,
                ids,
            },
            buf: Vec::with_capacity(BUFFER),
            positions,
        };
        store.retain(now_nanos())?;
        Ok(store)
    }

    /// Where `container`'s output stands, if the store has any of it.
    pub fn position(&self, container: &str) -> Option<Position> {
        self.positions.get(container).copied()
    }

    /// Appends a line of `key` seen at `ts` (nanoseconds). `last` is set for lines
    /// joined into one record: the time of the last one and how many have that time.
    pub fn append(
        &mut self,
        key: &StreamKey,
        ts: i64,
        last: Option<(i64, u32)>,
        text: &str,
    ) -> std::io::Result<()> {
        let pending = self.active.len + self.buf.len() as u64;
        if pending >= self.limits.segment_bytes && self.active.index.lines > 0 {
            self.seal()?;
        }
        let id = match self.active.ids.get(key) {
            Some(id) => *id,
            None => {
                let id = self.active.ids.len() as u32;
                record::encode_stream(&mut self.buf, id, key);
                self.active.ids.insert(key.clone(), id);
                id
            }
        };
        record::encode_line(&mut self.buf, id, ts, last, text);
        self.active.index.add(key, ts, last);
        advance(&mut self.positions, key, ts, last);
        if self.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out what was appended. (Nothing is synced to disk: lines lost to a
    /// crash of the host are read from the engine again.)
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.active.file.write_all(&self.buf)?;
        self.active.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Seals the segment being written and starts the next one; then drops what the
    /// limits no longer allow.
    fn seal(&mut self) -> std::io::Result<()> {
        self.flush()?;
        let seq = self.active.seq;
        let mut index = std::mem::take(&mut self.active.index);
        index.bytes = self.active.len;
        index.save(&segment::idx_path(&self.dir, seq))?;
        self.sealed.push((seq, index));
        let next = seq + 1;
        self.active = Active {
            seq: next,
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment::seg_path(&self.dir, next))?,
            len: 0,
            index: Index::default(),
            ids: HashMap::new(),
        };
        self.retain(now_nanos())
    }

    /// Removes sealed segments, oldest first, while together they are larger than the
    /// limit or their newest line is older than the age allowed at `now`.
    pub fn retain(&mut self, now: i64) -> std::io::Result<()> {
        let oldest_kept = now.saturating_sub(self.limits.max_age.as_nanos() as i64);
        let mut total: u64 = self.sealed.iter().map(|(_, i)| i.bytes).sum();
        while let Some((seq, index)) = self.sealed.first() {
            let too_old = index.last_ts.is_none_or(|t| t < oldest_kept);
            if total <= self.limits.max_bytes && !too_old {
                break;
            }
            total -= index.bytes;
            for path in [
                segment::seg_path(&self.dir, *seq),
                segment::idx_path(&self.dir, *seq),
            ] {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            self.sealed.remove(0);
        }
        Ok(())
    }

    /// Bytes the store holds on disk (and in its buffer).
    pub fn bytes(&self) -> u64 {
        self.sealed.iter().map(|(_, i)| i.bytes).sum::<u64>()
            + self.active.len
            + self.buf.len() as u64
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Moves `key`'s container's position past a record (events have none).
pub(crate) fn advance(
    positions: &mut BTreeMap<String, Position>,
    key: &StreamKey,
    ts: i64,
    last: Option<(i64, u32)>,
) {
    if key.stream == Stream::Event {
        return;
    }
    match positions.get_mut(&key.container) {
        Some(pos) => pos.advance(ts, last),
        // The container's name is copied once, at its first line.
        None => positions
            .entry(key.container.clone())
            .or_default()
            .advance(ts, last),
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
