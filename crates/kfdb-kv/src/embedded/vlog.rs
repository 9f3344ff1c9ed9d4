//! The value log: values of the data keyspace written once, to segment files of kfdb-kv's own,
//! while fjall keeps a [`Pointer`] to each (docs/benchmarks.md, `store-shapes`: fjall writes a
//! value twice — journal, then blob file at flush — and its flushes of values are what pause the
//! commit path).
//!
//! The commit thread alone appends. A transaction's values are appended ([`ValueLog::append`],
//! buffered) and made durable ([`ValueLog::sync`]: written, fdatasync'd, and the directory fsync'd
//! when a segment was created) before the fjall batch that points at them is written, so a pointer
//! that reached the disk always points at bytes that did. Files are `<dir>/<id:016x>.seg`; a
//! segment is closed once it holds `segment_bytes`, and an opened log starts a new one (an old
//! segment's tail past its last fdatasync may hold a torn write, which no pointer names). Readers
//! on any thread read by pointer ([`ValueLog::reader`], `pread`), and a pointer's CRC32 is checked
//! on every read.
//!
//! Each entry is `key length (u32 BE) | value length (u32 BE) | key | value`, the pointer naming
//! the value's bytes: a collector can walk a segment ([`Reader::entries`]) and ask fjall, key by
//! key, whether the key still points at that entry (live: moved to the head; otherwise garbage),
//! with no per-write bookkeeping — WiscKey's way. A segment with no live entry left is deleted
//! with [`ValueLog::remove`].
//!
//! Large writes bypass the page cache (`O_DIRECT`) where the file system allows it: copying a
//! produced byte into the page cache was the commit thread's largest cost (46 % of the broker's
//! CPU samples in a 4-partition produce run, docs/benchmarks.md). A direct write must cover
//! whole 4 KiB blocks of the file from a buffer aligned the same way, so a group's write is cut
//! in three: the bytes up to the file's next block boundary and the bytes after its last whole
//! block go through the page cache, the whole blocks between them directly (the write buffer
//! starts as far into an aligned allocation as the file's end is into its block, so file blocks
//! and buffer blocks coincide). The file's format does not change. Readers keep reading through
//! the page cache, on descriptors of their own. Where `O_DIRECT` is refused (tmpfs, some network
//! file systems) every write goes through the page cache.

use aligned_vec::{AVec, ConstAlign};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Bytes of an encoded [`Pointer`].
pub(crate) const POINTER_LEN: usize = 20;

/// Bytes of an entry's header (key length, value length).
const HEADER: usize = 8;

/// Where direct writes start and end, and their buffer's alignment.
const DIRECT_ALIGN: usize = 4096;

/// The fewest whole blocks' bytes written directly; fewer (a commit group of a few records) go
/// through the page cache: a direct write waits for the device, and all writes direct doubled
/// the p99 at 20,000 records/s (docs/benchmarks.md).
pub(crate) const DIRECT_MIN: usize = 256 * 1024;

/// Bytes waiting to be written, aligned for a direct write.
type WriteBuf = AVec<u8, ConstAlign<DIRECT_ALIGN>>;

/// A segment's size before the next is started.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Values of at least this many bytes go to the log; smaller ones stay in fjall.
pub(crate) const MIN_LOGGED: usize = 1024;

/// The mark of a store whose data keyspace holds tagged values (the next two constants).
const MARK: &str = "kfdb-kv-values";
/// A file fjall writes in every store it created (tells a store from before the mark).
const FJALL_VERSION_FILE: &str = "version";
/// First byte of a stored value: the value follows.
const TAG_INLINE: u8 = 0;
/// First byte of a stored value: a [`Pointer`] into the log follows.
const TAG_POINTER: u8 = 1;

/// Whether the store in `path` keeps its large values in a log: yes for a new store (the mark
/// is written first, durably) or a marked one, no for one created before the log existed (its
/// values are stored untagged, as they always were).
pub(crate) fn of_store(path: &Path) -> io::Result<bool> {
    if path.join(MARK).exists() {
        return Ok(true);
    }
    if path.join(FJALL_VERSION_FILE).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(path)?;
    let mut f = File::create(path.join(MARK))?;
    f.write_all(b"values are tagged; large ones are kept in vlog/\n")?;
    f.sync_all()?;
    File::open(path)?.sync_all()?;
    Ok(true)
}

/// `value` as a logging store keeps it in fjall when it is small.
pub(crate) fn tag_inline(value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + value.len());
    v.push(TAG_INLINE);
    v.extend_from_slice(value);
    v
}

/// The fjall value of a logged value.
pub(crate) fn tag_pointer(p: &Pointer) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + POINTER_LEN);
    v.push(TAG_POINTER);
    v.extend_from_slice(&p.encode());
    v
}

const SUFFIX: &str = ".seg";

/// Where a value's bytes are: segment, offset, length, and their CRC32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pointer {
    pub segment: u64,
    pub offset: u32,
    pub len: u32,
    pub crc: u32,
}

impl Pointer {
    pub(crate) fn encode(&self) -> [u8; POINTER_LEN] {
        let mut b = [0u8; POINTER_LEN];
        b[..8].copy_from_slice(&self.segment.to_be_bytes());
        b[8..12].copy_from_slice(&self.offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.len.to_be_bytes());
        b[16..].copy_from_slice(&self.crc.to_be_bytes());
        b
    }

    /// Both name the same bytes (segment, offset, length; the checksums are not compared).
    pub(crate) fn same_place(&self, other: &Pointer) -> bool {
        (self.segment, self.offset, self.len) == (other.segment, other.offset, other.len)
    }

    /// `None` unless `b` is exactly one encoded pointer.
    pub(crate) fn decode(b: &[u8]) -> Option<Pointer> {
        let b: &[u8; POINTER_LEN] = b.try_into().ok()?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Pointer {
            segment: u64::from_be_bytes(b[..8].try_into().ok()?),
            offset: u32_at(8),
            len: u32_at(12),
            crc: u32_at(16),
        })
    }
}

/// What the log shares with readers and the collector.
struct Shared {
    dir: PathBuf,
    files: RwLock<BTreeMap<u64, Arc<File>>>,
    /// The segment being appended to (`u64::MAX`: none yet).
    active: AtomicU64,
    /// Segments below this id are settled: every pointer into them that will ever be written to
    /// fjall has been ([`ValueLog::settle`]). A segment closed while its group is still being
    /// resolved is not: its newest entries look dead to a walk until the group's batches land.
    settled: AtomicU64,
    /// Bytes known to have died per segment since it was last walked (from deletions that read
    /// the pointers they delete): the collector walks such segments first.
    dead_hints: Mutex<HashMap<u64, u64>>,
}

/// Reads by pointer, walks and removes segments; shared by the log with readers on any thread and
/// the collector.
#[derive(Clone)]
pub(crate) struct Reader {
    shared: Arc<Shared>,
}

impl Reader {
    /// A value as a logging store keeps it in fjall, as readers see it.
    pub(crate) fn resolve(&self, stored: Bytes) -> io::Result<Bytes> {
        match stored.first() {
            Some(&TAG_INLINE) => Ok(stored.slice(1..)),
            Some(&TAG_POINTER) => match Pointer::decode(&stored[1..]) {
                Some(p) => self.read(&p),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stored value pointer is malformed",
                )),
            },
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stored value has no valid tag",
            )),
        }
    }

    /// Where `stored` (a fjall value) points, if it is a pointer.
    pub(crate) fn pointer_of(stored: &[u8]) -> Option<Pointer> {
        match stored.split_first() {
            Some((&TAG_POINTER, rest)) => Pointer::decode(rest),
            _ => None,
        }
    }

    /// The value `p` points at; `InvalidData` if its bytes do not match the pointer's CRC32,
    /// `NotFound` if its segment is gone. Each is a store fault: logged here, where the place is
    /// known, and answered as an I/O error.
    pub(crate) fn read(&self, p: &Pointer) -> io::Result<Bytes> {
        self.read_checked(p).inspect_err(|e| {
            tracing::error!(
                segment = p.segment,
                offset = p.offset,
                len = p.len,
                error = %e,
                "value log read failed"
            )
        })
    }

    fn read_checked(&self, p: &Pointer) -> io::Result<Bytes> {
        let file = {
            let files = self.shared.files.read().unwrap_or_else(|e| e.into_inner());
            files.get(&p.segment).cloned()
        };
        let Some(file) = file else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("value log segment {} is gone", p.segment),
            ));
        };
        let mut buf = vec![0u8; p.len as usize];
        file.read_exact_at(&mut buf, p.offset as u64)?;
        if crc32fast::hash(&buf) != p.crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "value log segment {} at {}: {} bytes do not match their checksum",
                    p.segment, p.offset, p.len
                ),
            ));
        }
        Ok(Bytes::from(buf))
    }

    /// The entries of segment `id` in order, as (key, where its value is), up to its first
    /// incomplete entry (a torn tail after a crash, which no pointer names). Values are not read
    /// (the pointers' CRC32 is 0): a collector compares places ([`Pointer::same_place`]).
    pub(crate) fn entries(&self, id: u64) -> io::Result<Vec<(Bytes, Pointer)>> {
        let file = {
            let files = self.shared.files.read().unwrap_or_else(|e| e.into_inner());
            files.get(&id).cloned()
        };
        let Some(file) = file else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("value log segment {id} is gone"),
            ));
        };
        // By position, not through the handle's cursor: the handle is shared with every reader.
        let len = file.metadata()?.len();
        let mut out = Vec::new();
        let mut at = 0u64;
        let mut header = [0u8; HEADER];
        while at + HEADER as u64 <= len {
            file.read_exact_at(&mut header, at)?;
            let key_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
            let value_len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let key_at = at + HEADER as u64;
            let value_at = key_at + key_len;
            let end = value_at + value_len as u64;
            if end > len || value_at > u32::MAX as u64 {
                break;
            }
            let mut key = vec![0u8; key_len as usize];
            file.read_exact_at(&mut key, key_at)?;
            out.push((
                Bytes::from(key),
                Pointer {
                    segment: id,
                    offset: value_at as u32,
                    len: value_len,
                    crc: 0,
                },
            ));
            at = end;
        }
        Ok(out)
    }

    /// Ids of the segments present, oldest first (the active one last).
    pub(crate) fn segments(&self) -> Vec<u64> {
        let files = self.shared.files.read().unwrap_or_else(|e| e.into_inner());
        files.keys().copied().collect()
    }

    /// How many segment files the log has, and their bytes (for metrics).
    /// The files are stat'ed outside the lock, which the commit thread takes to add a segment.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let files: Vec<Arc<File>> = {
            let files = self.shared.files.read().unwrap_or_else(|e| e.into_inner());
            files.values().cloned().collect()
        };
        let bytes = files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        (files.len() as u64, bytes)
    }

    /// Segments below this id may be walked and collected (see `Shared::settled`).
    pub(crate) fn settled_below(&self) -> u64 {
        self.shared.settled.load(Ordering::Acquire)
    }

    /// The segment being appended to, if any (never removed).
    pub(crate) fn active_segment(&self) -> Option<u64> {
        match self.shared.active.load(Ordering::Acquire) {
            u64::MAX => None,
            id => Some(id),
        }
    }

    /// Delete segment `id`: no pointer may name it any more, and no reader may still hold one
    /// into it. The active segment is kept.
    pub(crate) fn remove(&self, id: u64) -> io::Result<()> {
        if self.active_segment() == Some(id) {
            return Ok(());
        }
        {
            let mut files = self.shared.files.write().unwrap_or_else(|e| e.into_inner());
            files.remove(&id);
        }
        self.take_hint(id);
        match std::fs::remove_file(segment_path(&self.shared.dir, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Note that `p`'s bytes died (a deletion read the pointer it deleted).
    pub(crate) fn hint_dead(&self, p: &Pointer) {
        let mut hints = self
            .shared
            .dead_hints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *hints.entry(p.segment).or_default() += p.len as u64;
    }

    /// Bytes hinted dead in segment `id` since the last `take_hint`.
    pub(crate) fn hint(&self, id: u64) -> u64 {
        let hints = self
            .shared
            .dead_hints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        hints.get(&id).copied().unwrap_or(0)
    }

    /// Forget segment `id`'s hint (it was just walked).
    pub(crate) fn take_hint(&self, id: u64) {
        let mut hints = self
            .shared
            .dead_hints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        hints.remove(&id);
    }
}

/// The segment being appended to.
struct Active {
    id: u64,
    /// The appender's descriptor for direct writes (`O_DIRECT`, when `ValueLog::direct`).
    direct: Option<Arc<File>>,
    /// The appender's descriptor for writes through the page cache; readers have their own.
    writer: Arc<File>,
    /// Bytes written to the file.
    written: u64,
}

impl Active {
    /// How far the file's end is into its last 4 KiB block: the filler bytes the write buffer
    /// starts with, so that its blocks and the file's coincide.
    fn lead(&self) -> usize {
        (self.written % DIRECT_ALIGN as u64) as usize
    }
}

/// See the module documentation.
pub(crate) struct ValueLog {
    dir: PathBuf,
    segment_bytes: u64,
    reader: Reader,
    next_id: u64,
    active: Option<Active>,
    /// Appended since the last `sync`, not yet written to `active`: after the active segment's
    /// [`Active::lead`] filler bytes (none without an active segment).
    buf: WriteBuf,
    /// Large writes bypass the page cache; false once the file system refused it.
    direct: bool,
    /// The fewest whole blocks' bytes written directly (`DIRECT_MIN` unless a test says).
    direct_min: usize,
    /// A segment could not be opened for direct writes for another reason than EINVAL (logged
    /// once, not at every segment).
    direct_warned: bool,
    /// Bytes written bypassing the page cache (for tests).
    direct_bytes: u64,
    /// Segments closed since the last `sync` (written, not yet fdatasync'd).
    closed: Vec<Arc<File>>,
    /// A segment was created since the last `sync`: the directory needs an fsync.
    dir_dirty: bool,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}{SUFFIX}"))
}

impl ValueLog {
    /// Open (creating) the log in `dir`: every segment there is readable; appends go to a new one.
    pub(crate) fn open(dir: &Path, segment_bytes: u64) -> io::Result<ValueLog> {
        Self::open_with(dir, segment_bytes, true)
    }

    /// [`open`](Self::open), trying direct writes only if `direct`.
    fn open_with(dir: &Path, segment_bytes: u64, direct: bool) -> io::Result<ValueLog> {
        std::fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            files.insert(id, Arc::new(File::open(segment_path(dir, id))?));
        }
        let next_id = files.keys().next_back().map_or(0, |id| id + 1);
        Ok(ValueLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            reader: Reader {
                shared: Arc::new(Shared {
                    dir: dir.to_path_buf(),
                    files: RwLock::new(files),
                    active: AtomicU64::new(u64::MAX),
                    settled: AtomicU64::new(next_id),
                    dead_hints: Mutex::new(HashMap::new()),
                }),
            },
            next_id,
            active: None,
            buf: WriteBuf::new(DIRECT_ALIGN),
            direct_min: DIRECT_MIN,
            direct_warned: false,
            direct_bytes: 0,
            closed: Vec::new(),
            direct,
            dir_dirty: false,
        })
    }

    /// Send whole blocks directly from `bytes` of them per write on (see `DIRECT_MIN`).
    pub(crate) fn with_direct_min(mut self, bytes: usize) -> Self {
        self.direct_min = bytes.max(DIRECT_ALIGN);
        self
    }

    /// Where the active segment ends once the buffer is written.
    fn end(&self, a: &Active) -> u64 {
        a.written + (self.buf.len() - a.lead()) as u64
    }

    /// A handle for reading by pointer from any thread.
    pub(crate) fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Append `key`'s `value` (buffered until [`sync`](Self::sync)); the pointer names the
    /// value's bytes and is valid once `sync` returned.
    pub(crate) fn append(&mut self, key: &[u8], value: &[u8]) -> io::Result<Pointer> {
        let entry = (HEADER + key.len() + value.len()) as u64;
        let full = self.active.as_ref().is_none_or(|a| {
            let end = self.end(a);
            end > 0 && end + entry > self.segment_bytes
        });
        if full {
            self.start_segment()?;
        }
        let Some(active) = self.active.as_ref() else {
            return Err(io::Error::other("value log has no active segment"));
        };
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "value log entry over 4 GiB");
        let offset =
            u32::try_from(self.end(active) + (HEADER + key.len()) as u64).map_err(|_| too_big())?;
        let key_len = u32::try_from(key.len()).map_err(|_| too_big())?;
        let len = u32::try_from(value.len()).map_err(|_| too_big())?;
        self.buf.extend_from_slice(&key_len.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        Ok(Pointer {
            segment: active.id,
            offset,
            len,
            crc: crc32fast::hash(value),
        })
    }

    /// Write what was appended and make it durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        for f in self.closed.drain(..) {
            f.sync_data()?;
        }
        if let Some(a) = &self.active {
            a.writer.sync_data()?;
        }
        if self.dir_dirty {
            File::open(&self.dir)?.sync_all()?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Write what was appended, readable but not necessarily durable (a store opened without
    /// fsync). Closed segments need no sync then: their writers are let go (a collected
    /// segment's space is only given back once no descriptor holds it).
    pub(crate) fn write(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        self.closed.clear();
        Ok(())
    }

    /// Everything appended so far is now pointed at from fjall (or belongs to a transaction that
    /// failed): the segments before the active one may be walked by the collector. Called by the
    /// commit thread once a group's batches (or a relocation's) are written.
    pub(crate) fn settle(&self) {
        let below = self.active.as_ref().map_or(self.next_id, |a| a.id);
        self.reader
            .shared
            .settled
            .fetch_max(below, Ordering::AcqRel);
    }

    fn write_buffered(&mut self) -> io::Result<()> {
        let Some(active) = self.active.as_mut() else {
            return if self.buf.is_empty() {
                Ok(())
            } else {
                Err(io::Error::other("value log has no active segment"))
            };
        };
        let lead = active.lead();
        let data = &self.buf[lead..];
        if data.is_empty() {
            return Ok(());
        }
        // Through the page cache up to the file's next block boundary and after its last whole
        // block; the whole blocks between directly, when there are enough of them.
        let head = ((DIRECT_ALIGN - lead) % DIRECT_ALIGN).min(data.len());
        let blocks = (data.len() - head) / DIRECT_ALIGN * DIRECT_ALIGN;
        let at = active.written;
        let written = match active.direct.clone().filter(|_| blocks >= self.direct_min) {
            None => active.writer.write_all_at(data, at),
            Some(direct) => {
                let (first, rest) = data.split_at(head);
                let (middle, last) = rest.split_at(blocks);
                active.writer.write_all_at(first, at)?;
                let mid_at = at + head as u64;
                match direct.write_all_at(middle, mid_at) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        // Accepted at open, refused at write (a device needing more than 4 KiB
                        // alignment): from now on through the page cache.
                        tracing::warn!(
                            segment = active.id,
                            "the value log's direct write was refused; writing through the page cache"
                        );
                        self.direct = false;
                        active.direct = None;
                        active.writer.write_all_at(middle, mid_at)?;
                    }
                    r => {
                        r?;
                        self.direct_bytes += blocks as u64;
                    }
                }
                active.writer.write_all_at(last, mid_at + blocks as u64)
            }
        };
        written?;
        active.written += data.len() as u64;
        self.buf.clear();
        self.buf.resize(active.lead(), 0);
        Ok(())
    }

    /// Close the active segment (its bytes written; fdatasync'd at the next `sync`) and create
    /// the next.
    fn start_segment(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        if let Some(old) = self.active.take() {
            self.closed.push(old.writer);
        }
        let id = self.next_id;
        let path = segment_path(&self.dir, id);
        let created = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        // Taken now: if opening it again fails, the next try creates the next id, not this one.
        self.next_id += 1;
        let direct = if self.direct {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
            {
                Ok(direct) => Some(Arc::new(direct)),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::info!(
                        error = %e,
                        "the value log's file system refuses O_DIRECT; writing through the page cache"
                    );
                    self.direct = false;
                    None
                }
                Err(e) => {
                    // Out of descriptors, say: this segment is written through the page cache.
                    if !self.direct_warned {
                        self.direct_warned = true;
                        tracing::warn!(
                            error = %e,
                            segment = id,
                            "could not open a value log segment for direct writes; it is written through the page cache (logged once)"
                        );
                    }
                    None
                }
            }
        } else {
            None
        };
        let file = Arc::new(File::open(&path)?);
        {
            let mut files = self
                .reader
                .shared
                .files
                .write()
                .unwrap_or_else(|e| e.into_inner());
            files.insert(id, file.clone());
        }
        self.reader.shared.active.store(id, Ordering::Release);
        self.dir_dirty = true;
        self.buf.clear(); // the new segment's lead is 0
        self.active = Some(Active {
            id,
            direct,
            writer: Arc::new(created),
            written: 0,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| n.wrapping_add(i as u8)).collect()
    }

    fn key(n: u8) -> Vec<u8> {
        vec![b'k', n]
    }

    #[test]
    fn new_stores_log_values_and_older_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        assert!(of_store(&new).unwrap());
        assert!(new.join(MARK).exists());
        assert!(of_store(&new).unwrap(), "a marked store stays marked");
        let old = dir.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(FJALL_VERSION_FILE), b"3").unwrap();
        assert!(!of_store(&old).unwrap());
        assert!(!old.join(MARK).exists(), "an older store is not marked");
    }

    #[test]
    fn stored_values_resolve_by_their_tag() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open(dir.path(), 1 << 20).unwrap();
        let p = log.append(b"k", &value(9, 2_000)).unwrap();
        log.sync().unwrap();
        let r = log.reader();
        assert_eq!(
            &r.resolve(Bytes::from(tag_inline(b"small"))).unwrap()[..],
            b"small"
        );
        assert_eq!(
            &r.resolve(Bytes::from(tag_pointer(&p))).unwrap()[..],
            &value(9, 2_000)[..]
        );
        assert_eq!(Reader::pointer_of(&tag_pointer(&p)), Some(p));
        assert_eq!(Reader::pointer_of(&tag_inline(&p.encode())), None);
        for bad in [&b""[..], &[7u8, 1, 2][..], &[TAG_POINTER, 1, 2][..]] {
            let err = r.resolve(Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn pointers_round_trip_and_reject_other_lengths() {
        let p = Pointer {
            segment: 7,
            offset: 90_000,
            len: 4_096,
            crc: 0xdead_beef,
        };
        assert_eq!(Pointer::decode(&p.encode()), Some(p));
        assert_eq!(Pointer::decode(&p.encode()[..19]), None);
        assert_eq!(Pointer::decode(&[0u8; 21]), None);
    }

    #[test]
    fn values_read_back_across_segments_and_after_reopen() {
        values_read_back_across_segments_and_after_reopen_with(true);
        values_read_back_across_segments_and_after_reopen_with(false);
    }

    fn values_read_back_across_segments_and_after_reopen_with(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open_with(dir.path(), 100, direct).unwrap();
        let values: Vec<Vec<u8>> = (0..6).map(|n| value(n, 30 + 10 * n as usize)).collect();
        let pointers: Vec<Pointer> = (0..6u8)
            .map(|n| log.append(&key(n), &values[n as usize]).unwrap())
            .collect();
        log.sync().unwrap();
        // Entries of 40 and 50 bytes (8 of header, 2 of key) share one 100-byte segment; 60,
        // 70, 80 and 90 take one each.
        let segments: Vec<u64> = pointers.iter().map(|p| p.segment).collect();
        assert_eq!(segments, [0, 0, 1, 2, 3, 4]);
        let reader = log.reader();
        for (v, p) in values.iter().zip(&pointers) {
            assert_eq!(&reader.read(p).unwrap()[..], &v[..]);
        }
        drop(log);
        let mut again = ValueLog::open_with(dir.path(), 100, direct).unwrap();
        for (v, p) in values.iter().zip(&pointers) {
            assert_eq!(&again.reader().read(p).unwrap()[..], &v[..]);
        }
        // Appends after a reopen go to a new segment, never after an old one's tail.
        let p = again.append(b"k", b"after").unwrap();
        again.sync().unwrap();
        assert_eq!((p.segment, p.offset), (5, HEADER as u32 + 1));
        assert_eq!(again.reader().segments(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_segment_walk_names_each_key_and_its_value_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open(dir.path(), 1 << 20).unwrap();
        let a = log.append(&key(1), &value(1, 300)).unwrap();
        let b = log.append(&key(2), &value(2, 5)).unwrap();
        log.sync().unwrap();
        // A crash mid-write: a header announcing more bytes than reached the file.
        let path = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 2, 0, 0, 1, 0, b'k', 3, 9, 9])
            .unwrap();
        let entries = log.reader().entries(0).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (&entries[0].0[..], &entries[1].0[..]),
            (&key(1)[..], &key(2)[..])
        );
        assert!(entries[0].1.same_place(&a) && entries[1].1.same_place(&b));
    }

    #[test]
    fn large_writes_bypass_the_page_cache_and_read_back_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open(dir.path(), 64 << 20).unwrap();
        // Writes ending off a block boundary, then large ones starting off it (a head and tail
        // through the page cache, the whole blocks between directly), twice.
        let sizes = [3_001, DIRECT_MIN + 5_000, 17, 2 * DIRECT_MIN + 4_093, 1_024];
        let mut pointers = Vec::new();
        for (n, len) in sizes.iter().enumerate() {
            pointers.push(log.append(&key(n as u8), &value(n as u8, *len)).unwrap());
            log.sync().unwrap();
        }
        if log.direct {
            assert!(
                log.direct_bytes >= 3 * DIRECT_MIN as u64,
                "{}",
                log.direct_bytes
            );
        }
        let file_len = std::fs::metadata(segment_path(dir.path(), 0))
            .unwrap()
            .len();
        let entries: u64 = sizes.iter().map(|l| (HEADER + 2 + l) as u64).sum();
        assert_eq!(file_len, entries, "entries only, nothing between them");
        let check = |reader: &Reader| {
            let walked = reader.entries(0).unwrap();
            assert_eq!(walked.len(), sizes.len());
            for (n, ((k, at), p)) in walked.iter().zip(&pointers).enumerate() {
                assert_eq!(&k[..], &key(n as u8)[..]);
                assert!(at.same_place(p));
                assert_eq!(&reader.read(p).unwrap()[..], &value(n as u8, sizes[n])[..]);
            }
        };
        check(&log.reader());
        drop(log);
        check(&ValueLog::open(dir.path(), 64 << 20).unwrap().reader());
    }

    #[test]
    fn a_segment_closed_under_a_group_in_flight_is_settled_only_after_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        let mut log = ValueLog::open(dir.path(), 100).unwrap();
        let reader = log.reader();
        assert_eq!(
            reader.settled_below(),
            0,
            "an empty log has nothing to settle"
        );
        log.append(&key(1), &value(1, 60)).unwrap();
        log.sync().unwrap();
        log.settle();
        assert_eq!(
            reader.settled_below(),
            0,
            "segment 0 is still the active one"
        );
        // The next group's value closes segment 0 and starts 1; its batch is not written yet.
        let p = log.append(&key(2), &value(2, 60)).unwrap();
        assert_eq!(p.segment, 1);
        log.sync().unwrap();
        assert_eq!(
            reader.settled_below(),
            0,
            "closed, but its group is in flight"
        );
        log.settle();
        assert_eq!(reader.settled_below(), 1);
        drop(log);
        let again = ValueLog::open(dir.path(), 100).unwrap();
        assert_eq!(
            again.reader().settled_below(),
            2,
            "after a reopen all are settled"
        );
    }

    #[test]
    fn a_damaged_value_is_an_error_not_wrong_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open(dir.path(), 1 << 20).unwrap();
        let p = log.append(&key(1), &value(1, 64)).unwrap();
        log.sync().unwrap();
        let path = segment_path(dir.path(), p.segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = ValueLog::open(dir.path(), 1 << 20)
            .unwrap()
            .reader()
            .read(&p)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn removed_segments_are_gone_and_the_active_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ValueLog::open(dir.path(), 10).unwrap();
        let a = log.append(&key(1), &value(1, 10)).unwrap();
        let b = log.append(&key(2), &value(2, 10)).unwrap();
        log.sync().unwrap();
        assert_eq!((a.segment, b.segment), (0, 1));
        log.reader().remove(a.segment).unwrap();
        log.reader().remove(b.segment).unwrap(); // active: kept
        let reader = log.reader();
        assert_eq!(reader.read(&a).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(&reader.read(&b).unwrap()[..], &value(2, 10)[..]);
        assert!(!segment_path(dir.path(), a.segment).exists());
        assert_eq!(log.reader().segments(), [1]);
    }
}
