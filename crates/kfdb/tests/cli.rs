//! `kfdb topic ...` against an embedded store directory: create, paginated list, describe,
//! delete, and errors a user would see.

use std::process::{Command, Output};

fn kfdb(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kfdb"))
        .arg("topic")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("KFDB_LOG", "error")
        .output()
        .expect("run kfdb")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn topic_subcommands_create_list_describe_delete() {
    let dir = tempfile::tempdir().unwrap();
    let created = kfdb(
        dir.path(),
        &[
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=1000",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    assert!(stdout(&created).contains("partitions: 3"));
    for n in ["b", "c", "d"] {
        assert!(kfdb(dir.path(), &["create", n]).status.success());
    }
    let page = kfdb(dir.path(), &["list", "--limit", "2"]);
    assert_eq!(stdout(&page), "b\nc\n");
    assert!(String::from_utf8_lossy(&page.stderr).contains("--after c"));
    assert_eq!(
        stdout(&kfdb(dir.path(), &["list", "--after", "c"])),
        "d\norders\n"
    );
    let described = stdout(&kfdb(dir.path(), &["describe", "orders"]));
    assert!(described.contains("retention.ms=1000"), "{described}");
    assert!(
        described.contains("partition 2: log start 0, high watermark 0"),
        "{described}"
    );
    let again = kfdb(dir.path(), &["create", "orders"]);
    assert!(!again.status.success(), "creating an existing topic fails");
    let bad = kfdb(
        dir.path(),
        &["create", "x", "--config", "retention.ms=soon"],
    );
    assert!(!bad.status.success(), "invalid config value fails");
    assert!(kfdb(dir.path(), &["delete", "orders"]).status.success());
    assert!(!kfdb(dir.path(), &["describe", "orders"]).status.success());
    assert_eq!(stdout(&kfdb(dir.path(), &["list"])), "b\nc\nd\n");
}
