//! What one store transaction can do to one partition: the primitives that appends, transaction
//! markers and retention are built from. Each takes the transaction it runs in; none commits.
//!
//! - `begin_write`: the prelude of every transaction in which a partition's leader writes its log
//!   — check the topic still exists and that the owner key still names this broker (claimed by
//!   `leadership.rs`), read the state, all as conflicting reads; `begin_marker_write` the same for
//!   the transaction coordinator, which writes markers into partitions other brokers may lead.
//! - `write_batch`: a batch's chunks, its index row and, when it raises the partition's maximum
//!   timestamp, a time-index row; the state advances.
//! - producer states, open transactions, and the coordinator's record of which partitions a
//!   producer added to its transaction.
//!
//! Writers read with `snapshot = false` so that concurrent changes conflict; readers with `true`.

use crate::batch::Batch;
use crate::cache::NewBatch;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::parts::RecordParts;
use crate::values::{
    self, AbortedTxn, BatchInfo, Owner, PartitionState, ProducerState, TxnPartition,
    decode_open_txn,
};
use bytes::BytesMut;
use kfdb_kv::{RangeOption, Transaction};

/// A partition's state (the default before its first append).
pub(crate) async fn read_state(
    tx: &Transaction,
    p: PartitionId,
    snapshot: bool,
) -> LogResult<PartitionState> {
    match tx.get(&keys::partition_state(p), snapshot).await? {
        Some(v) => PartitionState::decode(&v),
        None => Ok(PartitionState::default()),
    }
}

/// A partition's state, `None` when it has never been written (or its topic is gone).
pub(crate) async fn read_stored_state(
    tx: &Transaction,
    p: PartitionId,
    snapshot: bool,
) -> LogResult<Option<PartitionState>> {
    match tx.get(&keys::partition_state(p), snapshot).await? {
        Some(v) => PartitionState::decode(&v).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn write_state(tx: &Transaction, p: PartitionId, state: &PartitionState) {
    tx.set(&keys::partition_state(p), &state.encode());
}

/// The prelude of every transaction in which a partition's leader writes its log: the topic
/// still exists (`None` if not), the owner key names `node` (`NotLeader` if another broker took
/// the partition over since this one claimed it), and the partition's state — all conflicting
/// reads, so a change of owner while this transaction runs makes it fail.
pub(crate) async fn begin_write(
    tx: &Transaction,
    p: PartitionId,
    node: i32,
) -> LogResult<Option<(Owner, PartitionState)>> {
    let Some((owner, state)) = begin_marker_write(tx, p).await? else {
        return Ok(None);
    };
    match owner {
        Some(owner) if owner.node == node => Ok(Some((owner, state))),
        _ => Err(LogError::NotLeader),
    }
}

/// The prelude of a transaction marker's write into `p`, whoever leads it: the topic still exists
/// (`None` if not), the current owner (`None` for a partition nobody has written: epoch 0, no
/// owner) and the state, all conflicting reads: an append racing the marker conflicts with it.
/// The three reads are issued together (one round trip on FoundationDB, not three).
pub(crate) async fn begin_marker_write(
    tx: &Transaction,
    p: PartitionId,
) -> LogResult<Option<(Option<Owner>, PartitionState)>> {
    let meta_key = keys::topic_meta(p.tid);
    let owner_key = keys::partition_owner(p);
    let (meta, owner, state) = futures::try_join!(
        async { Ok::<_, LogError>(tx.get(&meta_key, false).await?) },
        async { Ok::<_, LogError>(tx.get(&owner_key, false).await?) },
        read_state(tx, p, false),
    )?;
    if meta.is_none() {
        return Ok(None);
    }
    let owner = owner.map(|v| Owner::decode(&v)).transpose()?;
    Ok(Some((owner, state)))
}

/// The stored bytes of the batches holding offsets `from..until` of `p` (whole batches; a
/// snapshot read), stopping at a batch boundary once `max_bytes` are read (the first batch
/// always whole): the chunk values' record bytes themselves, not copied into one buffer.
pub(crate) async fn read_log(
    tx: &Transaction,
    p: PartitionId,
    from: i64,
    until: i64,
    max_bytes: usize,
) -> LogResult<RecordParts> {
    use futures::TryStreamExt;
    let range = RangeOption::new(keys::log_from(p, from), keys::log_from(p, until))
        .target_bytes(max_bytes.clamp(1, 16 * 1024 * 1024));
    let mut stream = Box::pin(tx.get_ranges(range, true));
    let mut out = RecordParts::new();
    let mut current: Option<i64> = None;
    while let Some(rows) = stream.try_next().await? {
        for kv in rows {
            let (last, _chunk) = keys::parse_log_chunk(p, &kv.key)?;
            if current != Some(last) {
                if current.is_some() && out.len() >= max_bytes {
                    return Ok(out);
                }
                current = Some(last);
            }
            out.push(values::chunk_records(&kv.value)?);
        }
    }
    Ok(out)
}

/// Aborted transactions with records in `[from, to]`, as `(producer id, first offset, abort
/// marker offset)`: those whose abort marker is at or after `from` and whose first offset is at or
/// before `to`. The scan (in marker order) ends at the first entry whose last stable offset after
/// its marker is past `to`: every later abort started after `to`. A snapshot read.
pub(crate) async fn aborted_between(
    tx: &Transaction,
    p: PartitionId,
    from: i64,
    to: i64,
) -> LogResult<Vec<(i64, i64, i64)>> {
    use futures::TryStreamExt;
    let (_, end) = keys::aborted_txns(p);
    // Unlimited, but bounded: an entry that does not end the scan has its marker below its
    // stable offset <= `to`, i.e. inside the range.
    let range = RangeOption::new(keys::aborted_txn(p, from), end);
    let mut stream = Box::pin(tx.get_ranges(range, true));
    let mut out = Vec::new();
    while let Some(rows) = stream.try_next().await? {
        for kv in rows {
            let marker = keys::parse_aborted_txn(p, &kv.key)?;
            let a = AbortedTxn::decode(&kv.value)?;
            if a.first_offset <= to {
                out.push((a.producer_id, a.first_offset, marker));
            }
            if a.last_stable > to {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Tell `node`, which leads `p`, that another broker changed it (a transaction marker): it drops
/// its cached tail of `p` and wakes the fetches waiting on it (`Log`'s inbox task).
pub(crate) fn notify(tx: &Transaction, node: i32, p: PartitionId) {
    tx.set(&keys::inbox_entry(node, p), b"");
    tx.atomic_op(
        &keys::inbox_version(node),
        &1i64.to_le_bytes(),
        kfdb_kv::MutationType::Add,
    );
}

/// Store the record bytes of the batch ending at `last` as its chunk rows (`CHUNK_BYTES` each).
pub(crate) fn write_chunks(tx: &Transaction, p: PartitionId, last: i64, bytes: &[u8]) {
    write_chunks_of(tx, p, last, [bytes]);
}

/// Stamp `batch` and store it as its chunk rows; returns the stamped batch as the pieces the
/// rows hold (what the hot-segment cache keeps).
fn stamp_and_write_chunks(
    tx: &Transaction,
    p: PartitionId,
    last: i64,
    batch: &Batch,
    stamp: (i64, i32, Option<i64>),
) -> RecordParts {
    let head = batch.stamped_header(stamp.0, stamp.1, stamp.2);
    write_chunks_of(tx, p, last, [&head, batch.body()])
}

/// Store the batch ending at `last`, whose bytes are `pieces` one after another, as its chunk
/// rows: one buffer laid out as the rows' values (each the chunk header, then up to
/// `CHUNK_BYTES` of the batch), every row a slice of it. Returns the batch as the same slices
/// without their headers. The batch is copied once on its way to the store, however many chunks
/// it spans.
fn write_chunks_of<const N: usize>(
    tx: &Transaction,
    p: PartitionId,
    last: i64,
    mut pieces: [&[u8]; N],
) -> RecordParts {
    let header = values::CHUNK_HEADER.len();
    let size: usize = pieces.iter().map(|piece| piece.len()).sum();
    let chunks = size.div_ceil(keys::CHUNK_BYTES);
    let mut buf = BytesMut::with_capacity(size + chunks * header);
    let mut ends = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        buf.extend_from_slice(&values::CHUNK_HEADER);
        let mut room = keys::CHUNK_BYTES;
        for piece in &mut pieces {
            let take = piece.len().min(room);
            buf.extend_from_slice(&piece[..take]);
            *piece = &piece[take..];
            room -= take;
        }
        ends.push(buf.len());
    }
    let buf = buf.freeze();
    let mut stored = RecordParts::new();
    let mut start = 0;
    for (i, end) in ends.into_iter().enumerate() {
        tx.set_bytes(&keys::log_chunk(p, last, i as i32), buf.slice(start..end));
        stored.push(buf.slice(start + header..end));
        start = end;
    }
    stored
}

/// Write one batch at `state.next_offset`: its chunks, its index row, a time-index row when it
/// raises the partition's max timestamp; advance `state`. Returns the batch as stored.
pub(crate) fn write_batch(
    tx: &Transaction,
    p: PartitionId,
    epoch: i32,
    batch: &Batch,
    append_time: Option<i64>,
    state: &mut PartitionState,
) -> NewBatch {
    let base = state.next_offset;
    let last = base + i64::from(batch.last_offset_delta);
    let bytes = stamp_and_write_chunks(tx, p, last, batch, (base, epoch, append_time));
    let max_ts = batch.stored_max_timestamp(append_time);
    let info = BatchInfo {
        base_offset: base,
        last_offset: last,
        max_timestamp: max_ts,
        size: bytes.len() as i64,
    };
    tx.set(&keys::batch_index(p, last), &info.encode());
    if max_ts > state.max_timestamp {
        tx.set(&keys::time_index(p, max_ts, last), b"");
        state.max_timestamp = max_ts;
        state.max_timestamp_offset = last;
    }
    state.next_offset = last + 1;
    state.bytes += bytes.len() as i64;
    NewBatch {
        base_offset: base,
        last_offset: last,
        bytes,
    }
}

/// The first `limit` rows of a partition's batch index, in offset order, read as conflicting
/// reads (retention deletes what it read).
pub(crate) async fn batch_infos(
    tx: &Transaction,
    p: PartitionId,
    limit: usize,
) -> LogResult<Vec<BatchInfo>> {
    let (b, e) = keys::batch_index_range(p);
    let rows = tx
        .get_range(&RangeOption::new(b, e).limit(limit), false)
        .await?;
    rows.kvs.iter().map(|kv| batch_info_of(p, kv)).collect()
}

/// A batch-index row of `p`, decoded.
pub(crate) fn batch_info_of(p: PartitionId, kv: &kfdb_kv::KeyValue) -> LogResult<BatchInfo> {
    BatchInfo::decode(keys::parse_batch_index(p, &kv.key)?, &kv.value)
}

/// The first batch-index row of `range` (a snapshot read).
async fn first_batch_info(
    tx: &Transaction,
    p: PartitionId,
    range: RangeOption,
) -> LogResult<Option<BatchInfo>> {
    let rows = tx.get_range(&range.limit(1), true).await?;
    rows.kvs.first().map(|kv| batch_info_of(p, kv)).transpose()
}

/// The batch-index row of the batch holding `offset`, or of the first after it.
pub(crate) async fn batch_at(
    tx: &Transaction,
    p: PartitionId,
    offset: i64,
) -> LogResult<Option<BatchInfo>> {
    let (_, e) = keys::batch_index_range(p);
    first_batch_info(tx, p, RangeOption::new(keys::batch_index(p, offset), e)).await
}

/// The batch-index row of the partition's last batch.
pub(crate) async fn last_batch(tx: &Transaction, p: PartitionId) -> LogResult<Option<BatchInfo>> {
    let (b, e) = keys::batch_index_range(p);
    first_batch_info(tx, p, RangeOption::new(b, e).reverse(true)).await
}

/// The last offset of the first batch holding a record with a timestamp of at least `t`, from the
/// time index: the first batch whose max timestamp reaches `t` is the first to raise the
/// partition's running maximum to it (a snapshot read).
pub(crate) async fn first_batch_reaching(
    tx: &Transaction,
    p: PartitionId,
    t: i64,
) -> LogResult<Option<i64>> {
    let (b, e) = keys::time_index_range(p);
    let from = keys::time_index(p, t, 0);
    let rows = tx
        .get_range(&RangeOption::new(from.max(b), e).limit(1), true)
        .await?;
    rows.kvs
        .first()
        .map(|row| keys::parse_time_index(p, &row.key).map(|(_, last)| last))
        .transpose()
}

// ---- idempotent producers -------------------------------------------------------------------

/// A producer's state in the partition, if stored.
pub(crate) async fn read_producer(
    tx: &Transaction,
    p: PartitionId,
    pid: i64,
    snapshot: bool,
) -> LogResult<Option<ProducerState>> {
    match tx.get(&keys::producer_state(p, pid), snapshot).await? {
        Some(v) => ProducerState::decode(&v).map(Some),
        None => Ok(None),
    }
}

/// The stored states of several producers in `p`, read together (conflicting reads).
pub(crate) async fn read_producers(
    tx: &Transaction,
    p: PartitionId,
    pids: &[i64],
) -> LogResult<Vec<Option<ProducerState>>> {
    futures::future::try_join_all(pids.iter().map(|&pid| read_producer(tx, p, pid, false))).await
}

pub(crate) fn write_producer(tx: &Transaction, p: PartitionId, pid: i64, state: &ProducerState) {
    tx.set(&keys::producer_state(p, pid), &state.encode());
}

// ---- open transactions in the partition -----------------------------------------------------

/// The first offset of `pid`'s open transaction in the partition, if one is open.
pub(crate) async fn read_open(
    tx: &Transaction,
    p: PartitionId,
    pid: i64,
) -> LogResult<Option<i64>> {
    match tx.get(&keys::open_txn(p, pid), false).await? {
        Some(v) => decode_open_txn(&v).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn write_open(tx: &Transaction, p: PartitionId, pid: i64, first_offset: i64) {
    tx.set(
        &keys::open_txn(p, pid),
        &values::encode_open_txn(first_offset),
    );
}

pub(crate) fn clear_open(tx: &Transaction, p: PartitionId, pid: i64) {
    tx.clear(&keys::open_txn(p, pid));
}

/// The first offset of the oldest transaction open in the partition other than `except`'s, -1
/// when none.
pub(crate) async fn oldest_open(tx: &Transaction, p: PartitionId, except: i64) -> LogResult<i64> {
    let (b, e) = keys::open_txns(p);
    let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
    let mut oldest = -1;
    for kv in rows.iter() {
        if keys::parse_open_txn(p, &kv.key)? == except {
            continue;
        }
        let first = decode_open_txn(&kv.value)?;
        if oldest < 0 || first < oldest {
            oldest = first;
        }
    }
    Ok(oldest)
}

/// For a transactional batch opening `producer_id`'s transaction in a partition: the coordinator
/// must have added the partition to that producer's transaction, at this epoch. A fenced or
/// timed-out producer therefore cannot leave a transaction open that no marker will ever close.
pub(crate) async fn check_added_to_txn(
    tx: &Transaction,
    producer_id: i64,
    epoch: i16,
    p: PartitionId,
) -> LogResult<()> {
    let not_added = || {
        LogError::InvalidTxnState(format!(
            "partition {} was not added to producer {producer_id}'s transaction",
            p.partition
        ))
    };
    let Some(id) = tx.get(&keys::txn_pid(producer_id), true).await? else {
        return Err(LogError::InvalidTxnState(format!(
            "producer {producer_id} has no transactional id"
        )));
    };
    let id = values::decode_transactional_id(&id);
    let Some(v) = tx.get(&keys::txn_partition(&id, p), false).await? else {
        return Err(not_added());
    };
    let added = TxnPartition::decode(&v)?;
    if added.producer_id != producer_id {
        return Err(not_added());
    }
    match epoch.cmp(&added.epoch) {
        std::cmp::Ordering::Less => Err(LogError::InvalidProducerEpoch),
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(not_added()),
    }
}
