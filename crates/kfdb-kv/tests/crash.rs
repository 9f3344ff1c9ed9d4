//! Crash test of the embedded backend: a child process (`kfdb-kv-crash-child`) commits numbered
//! transactions and prints each number after `commit()` returns; we SIGKILL it at random moments,
//! reopen the store, and check that every printed number is present and that no transaction is
//! partially applied (each has all three keys, and the counter equals the number of transactions).

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
            assert_eq!(kv.value.as_ref(), n.to_be_bytes(), "value of {n}/{part}");
            parts.entry(n).or_default().push(part);
        }
        for (n, p) in &parts {
            assert_eq!(
                p,
                &["a", "b", "c"],
                "round {round}: transaction {n} partially applied"
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
    eprintln!(
        "{} acknowledged commits over {KILLS} SIGKILLs, none lost",
        acknowledged.len()
    );
}
