//! The baselines measured in this process next to kfdb: the raw embedded engine written as kfdb's
//! durability requires (produce), the disk's own append + fdatasync latency (latency), and a
//! loopback TCP copy (tail). FoundationDB mode's produce baseline is in `fdb`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use crate::workload::{MIB, RECORD_BYTES, bench_dir, incompressible, payload};

/// The raw-engine baseline: fjall configured as the embedded backend configures it
/// (`kfdb_kv::embedded::raw_engine`), one writer, `records` x 1 KiB of payload in write batches of
/// 1 MiB of incompressible bytes, fsync (`PersistMode::SyncAll`) after every batch (and a full memtable sealed between
/// batches, as kfdb's commit thread does). `value_bytes` is the size of the values
/// the batch is cut into: 1,024 (one value per record) or 90,000 (kfdb's record-batch chunk size).
/// Returns seconds.
pub fn raw_append(records: u64, value_bytes: usize) -> f64 {
    let dir = tempfile::Builder::new()
        .prefix("kfdb-bench-raw-")
        .tempdir_in(bench_dir())
        .expect("temp dir");
    let raw =
        kfdb_kv::embedded::raw_engine(dir.path(), &kfdb_kv::embedded::EmbeddedOptions::default())
            .expect("open raw engine");
    let (db, ks) = (&raw.db, &raw.data);
    // The same incompressible bytes as the produce runs' records.
    let data = incompressible(MIB);
    let space = kfdb_kv::tuple::Subspace::from_bytes(b"bench".to_vec());
    let mut left = records * RECORD_BYTES as u64;
    let mut key = 0u64;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        let mut batch = db.batch();
        for chunk in data[..n].chunks(value_bytes) {
            batch.insert(ks, space.pack(&(0u64, key)), chunk.to_vec());
            key += 1;
        }
        batch.commit().expect("raw batch commit");
        raw.rotate_full(ks).expect("raw memtable rotation");
        db.persist(fjall::PersistMode::SyncAll).expect("raw fsync");
        left -= n as u64;
    }
    start.elapsed().as_secs_f64()
}

/// The disk's own durable-append latency, for context: `n` times append 1 KiB to a file in the
/// bench directory and fdatasync it; returns sorted latencies in ms.
pub fn fsync_probe(n: usize) -> Vec<f64> {
    let dir = tempfile::Builder::new()
        .prefix("kfdb-bench-fsync-")
        .tempdir_in(bench_dir())
        .expect("temp dir");
    let mut f = File::create(dir.path().join("probe")).expect("create probe file");
    let data = payload();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&data).expect("write probe");
        let t = Instant::now();
        f.sync_data().expect("fdatasync probe");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    lat
}

/// Loopback TCP copy of `bytes` between two sockets in this process, 1 MiB writes and reads;
/// returns seconds.
pub fn tcp_copy(bytes: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; MIB];
        let mut got = 0u64;
        while got < bytes {
            let n = sock.read(&mut buf).expect("read");
            assert!(n > 0, "eof");
            got += n as u64;
        }
        Instant::now()
    });
    let data = vec![7u8; MIB];
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        sock.write_all(&data[..n]).expect("write");
        left -= n as u64;
    }
    let end = reader.join().expect("reader");
    end.duration_since(start).as_secs_f64()
}
