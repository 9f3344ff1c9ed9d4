//! Crash test of compaction: a child process (`kfdb-log-compaction-child`) appends keyed records
//! and tombstones to a compacted topic and compacts it in a loop, printing each record once its
//! append returned. We SIGKILL it at random moments (inside compaction transactions, appends and
//! commits), reopen the store and check, every round:
//! - no acknowledged latest record is lost: each key's last record in the log is at or after its
//!   last acknowledged one, and is that record when at the same offset (a tombstone may be gone);
//! - what a round found is kept from then on: a key's last record newer than its acknowledged one
//!   (an append the kill cut off between its commit and its acknowledgement) counts as acknowledged
//!   in later rounds, so its tombstone may go and its value may not;
//! - no offset appears twice, offsets increase, every batch decodes (CRC, lengths);
//! - the key index agrees with the log for every key.

mod common;

use common::*;
use kafka_protocol::records::RecordBatchDecoder;
use kfdb_log::Log;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const KILLS: usize = 12;

/// `key -> (offset, value)` of the last acknowledged record of each key (`None`: a tombstone).
type Acked = HashMap<String, (i64, Option<String>)>;

/// Check the log against `acked`, then adopt into it each key's last record that is newer (it
/// landed unacknowledged and is durable now); returns how many records the log holds.
async fn check(log: &Log, acked: &mut Acked, round: usize) -> usize {
    let t = log.topics().get("crash-compacted").await.unwrap().unwrap();
    let mut last: HashMap<String, (i64, Option<String>)> = HashMap::new();
    let mut offset = 0;
    let mut previous = -1;
    let mut held = 0;
    loop {
        let f = log.reader().fetch(&t, 0, offset, 1 << 20).await.unwrap();
        if f.records.is_empty() {
            break;
        }
        let mut bytes = f.records.to_bytes();
        for r in RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap_or_else(|e| panic!("round {round}: a batch does not decode: {e}"))
            .into_iter()
            .flat_map(|s| s.records)
        {
            assert!(
                r.offset > previous,
                "round {round}: offset {} after {previous}",
                r.offset
            );
            previous = r.offset;
            offset = r.offset + 1;
            held += 1;
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            last.insert(key, (r.offset, value));
        }
    }
    for (key, (acked_offset, acked_value)) in acked.iter() {
        match last.get(key) {
            None => {
                assert!(
                    acked_value.is_none(),
                    "round {round}: {key}'s acknowledged record at {acked_offset} is lost"
                );
                let found = log.reader().latest_by_key(&t, 0, key.as_bytes()).await;
                assert!(
                    matches!(found, Ok(None)),
                    "round {round}: {key} is gone from the log but not from the index: {found:?}"
                );
            }
            Some((o, v)) => {
                assert!(
                    o >= acked_offset,
                    "round {round}: {key} went back from acknowledged {acked_offset} to {o}"
                );
                if o == acked_offset {
                    assert_eq!(v, acked_value, "round {round}: {key} at {o}");
                }
            }
        }
    }
    for (key, (o, v)) in &last {
        let found = log
            .reader()
            .latest_by_key(&t, 0, key.as_bytes())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: the index lost {key}"));
        assert_eq!(found.offset, *o, "round {round}: the index of {key}");
        assert_eq!(found.value.is_none(), v.is_none(), "round {round}: {key}");
    }
    for (key, (o, v)) in last {
        if acked
            .get(&key)
            .is_none_or(|(acked_offset, _)| *acked_offset < o)
        {
            acked.insert(key, (o, v));
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_killed_anywhere_loses_no_live_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Acked = HashMap::new();
    let mut lines = 0usize;
    let mut held = 0;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kfdb-log-compaction-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut stdout = stdout;
            let _ = stdout.read_to_string(&mut text);
            // A line the kill cut short has no newline: not acknowledged as printed.
            let complete = text.rfind('\n').map_or(0, |i| i + 1);
            text[..complete]
                .lines()
                .map(str::to_string)
                .collect::<Vec<String>>()
        });
        let wait = 150 + rand::random::<u64>() % 600;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!("round {round}: the child stopped by itself ({status}) before the kill");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() != 4 || parts[0] != "A" {
                continue;
            }
            let Ok(offset) = parts[2].parse::<i64>() else {
                continue;
            };
            let value = (parts[3] != "-").then(|| parts[3].to_string());
            lines += 1;
            acked.insert(parts[1].to_string(), (offset, value));
        }
        let log = open(dir.path()).await;
        held = check(&log, &mut acked, round).await;
        drop(log);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lines > 100, "the child acknowledged only {lines} records");
    assert!(
        held < lines / 2,
        "compaction ran: {held} of {lines} records left"
    );
}
