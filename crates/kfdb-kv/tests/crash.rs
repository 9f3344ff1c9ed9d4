//! Crash test of the embedded backend: a child process (`kfdb-kv-crash-child`) commits numbered
//! transactions and prints each number after `commit()` returns; we SIGKILL it at random moments,
//! reopen the store, and check that every printed number is present and that no transaction is
//! partially applied (each has all four keys with their values — one of them kept in the value
//! log, whose collector is busy moving and deleting segments when the kills land — and the counter
//! equals the number of transactions).

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::tuple::{Subspace, pack};
use kfdb_kv::{Database, RangeOption};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const KILLS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill_and_none_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kfdb-kv-crash-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .collect::<Vec<u64>>()
        });
        let wait = 30 + rand::random::<u64>() % 300;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let printed = reader.join().unwrap();
        acknowledged.extend(printed);

        let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
        let tx = db.create_transaction().unwrap();
        let space = Subspace::from_bytes(pack(&"crash"));
        let (b, e) = space.range();
        let rows = tx
            .get_range_all(RangeOption::new(b, e), true)
            .await
            .unwrap();
        let mut parts: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for kv in &rows {
            let (n, part): (u64, String) = space.unpack(&kv.key).unwrap();
            if part == "d" {
                let expected: Vec<u8> = (0..1_500u64)
                    .map(|i| (n.wrapping_mul(31) + i) as u8)
                    .collect();
                assert!(
                    kv.value[..] == expected[..],
                    "round {round}: value of {n}/d: {} bytes, starts {:?}",
                    kv.value.len(),
                    &kv.value[..kv.value.len().min(12)]
                );
            } else {
                assert_eq!(kv.value.as_ref(), n.to_be_bytes(), "value of {n}/{part}");
            }
            parts.entry(n).or_default().push(part);
        }
        for (n, p) in &parts {
            assert_eq!(
                p,
                &["a", "b", "c", "d"],
                "round {round}: transaction {n} partially applied"
            );
        }
        // The key every transaction overwrites holds the value of one that is there.
        if let Some(junk) = tx.get(&pack(&"crash-junk"), true).await.unwrap() {
            let n = u64::from_be_bytes(junk[..8].try_into().unwrap());
            assert!(
                junk[..] == n.to_be_bytes().repeat(750)[..],
                "round {round}: junk"
            );
            assert!(
                parts.contains_key(&n),
                "round {round}: junk of {n}, not stored"
            );
        }
        for n in &acknowledged {
            assert!(
                parts.contains_key(n),
                "round {round}: acknowledged {n} lost"
            );
        }
        let count = tx.get(&pack(&"crash-count"), true).await.unwrap();
        let count = count
            .map(|c| u64::from_le_bytes(c.as_ref().try_into().unwrap()))
            .unwrap_or(0);
        assert_eq!(
            count,
            parts.len() as u64,
            "round {round}: counter disagrees with rows"
        );
        drop(tx);
        drop(db);
    }
    assert!(
        acknowledged.len() > KILLS,
        "the child acknowledged too few commits ({}) for the test to mean anything",
        acknowledged.len()
    );
    // The collector ran between the kills: the first segments are gone.
    let mut segments: Vec<u64> = std::fs::read_dir(dir.path().join("vlog"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
        })
        .collect();
    segments.sort();
    assert!(
        segments.first().is_some_and(|id| *id > 0),
        "no value log segment was collected: {segments:?}"
    );
    eprintln!(
        "{} acknowledged commits over {KILLS} SIGKILLs, none lost; value log segments {:?}..{:?} ({} left)",
        acknowledged.len(),
        segments.first(),
        segments.last(),
        segments.len()
    );
}
