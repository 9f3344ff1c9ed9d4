//! `kfdb topic ...` against an embedded store directory: create, paginated list, describe,
//! delete, and errors a user would see; `kfdb key get` on what kfdb's HTTP API appended; `kfdb
//! user` create, list and delete with the password on standard input.

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

#[test]
fn topic_rename_and_prefix_listing_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["app.a", "app.b", "other"] {
        assert!(kfdb(dir.path(), &["create", n]).status.success());
    }
    assert_eq!(
        stdout(&kfdb(dir.path(), &["list", "--prefix", "app."])),
        "app.a\napp.b\n"
    );
    let renamed = kfdb(dir.path(), &["rename", "app.a", "app.c"]);
    assert!(renamed.status.success(), "{renamed:?}");
    assert_eq!(
        stdout(&kfdb(dir.path(), &["list", "--prefix", "app."])),
        "app.b\napp.c\n"
    );
    let taken = kfdb(dir.path(), &["rename", "app.b", "other"]);
    assert!(
        !taken.status.success(),
        "renaming onto an existing topic fails"
    );
    // Without the store flags, rename has no Kafka API to go to.
    let over_protocol = Command::new(env!("CARGO_BIN_EXE_kfdb"))
        .args([
            "topic",
            "rename",
            "x",
            "y",
            "--bootstrap-server",
            "127.0.0.1:1",
        ])
        .env("KFDB_LOG", "error")
        .output()
        .unwrap();
    assert!(!over_protocol.status.success());
    assert!(String::from_utf8_lossy(&over_protocol.stderr).contains("no Kafka API renames"));
}

/// One HTTP/1.1 request on a fresh connection; returns the status code and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: kfdb\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[test]
fn key_get_reads_what_the_http_api_appended() {
    let bin = env!("CARGO_BIN_EXE_kfdb");
    let api = format!("127.0.0.1:{}", kfdb_harness::free_port());
    let mut server = kfdb_harness::Options::new(bin)
        .args(["--http-listen", &api])
        .start()
        .unwrap();
    let dir = server.data_dir().to_path_buf();
    // The HTTP listener starts with the brokers; wait until it answers.
    let mut tries = 0;
    while std::net::TcpStream::connect(&api).is_err() {
        tries += 1;
        assert!(tries < 100, "HTTP API not listening");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The embedded store has one user at a time: the compacted topic is made with `kfdb topic`
    // while kfdb is stopped, then kfdb serves it again.
    let (status, body) = http(&api, "GET", "/v1/topics/none/keys/k", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{body}");
    server.stop();
    let created = kfdb(
        &dir,
        &[
            "create",
            "accounts",
            "--partitions",
            "2",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let mut server = kfdb_harness::Options::new(bin)
        .args(["--http-listen", &api])
        .data_dir(&dir)
        .start()
        .unwrap();
    let mut tries = 0;
    while std::net::TcpStream::connect(&api).is_err() {
        tries += 1;
        assert!(tries < 100, "HTTP API not listening");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // "alice" -> "100", then "150" only if alice is still at offset 0 (base64: YWxpY2U=, MTAw, MTUw).
    let rec = |v: &str| format!(r#"{{"records":[{{"key":"YWxpY2U=","value":"{v}"}}]}}"#);
    let (status, body) = http(
        &api,
        "POST",
        "/v1/topics/accounts/partitions/1/records",
        &rec("MTAw"),
    );
    assert_eq!(status, 200, "{body}");
    let cond = r#"{"records":[{"key":"YWxpY2U=","value":"MTUw"}],"expected_key_offset":{"key":"YWxpY2U=","offset":0}}"#;
    let (status, body) = http(
        &api,
        "POST",
        "/v1/topics/accounts/partitions/1/records",
        cond,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &api,
        "POST",
        "/v1/topics/accounts/partitions/1/records",
        cond,
    );
    assert_eq!(status, 409, "the key moved on: {body}");
    server.stop();
    let get = |args: &[&str]| {
        Command::new(bin)
            .arg("key")
            .arg("--data-dir")
            .arg(&dir)
            .arg("get")
            .args(args)
            .env("KFDB_LOG", "error")
            .output()
            .expect("run kfdb")
    };
    let found = get(&["accounts", "alice", "--partition", "1"]);
    assert!(found.status.success(), "{found:?}");
    assert_eq!(stdout(&found), "150\n");
    let text = get(&["accounts", "alice", "--partition", "1", "--format", "text"]);
    assert!(stdout(&text).contains("offset 1\n"), "{}", stdout(&text));
    let missing = get(&["accounts", "bob", "--partition", "1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no record"));
    let other = get(&["accounts", "alice", "--partition", "0"]);
    assert!(
        !other.status.success(),
        "alice was written to partition 1 only"
    );
}

/// `kfdb user ...` with the password on standard input.
fn user(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kfdb"))
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("KFDB_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kfdb");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("kfdb user")
}

#[test]
fn user_subcommands_create_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let made = user(
        dir.path(),
        &["create", "admin", "--password-stdin"],
        "s3cret\n",
    );
    assert!(made.status.success(), "{made:?}");
    let one = user(
        dir.path(),
        &[
            "create",
            "app",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "4096",
        ],
        "pw\n",
    );
    assert!(one.status.success(), "{one:?}");
    let listed = stdout(&user(dir.path(), &["list"], ""));
    assert_eq!(
        listed,
        "admin\tSCRAM-SHA-256\t8192\nadmin\tSCRAM-SHA-512\t8192\napp\tSCRAM-SHA-512\t4096\n"
    );
    for (args, stdin) in [
        (&["create", "x", "--password-stdin"][..], "\n"),
        (
            &["create", "x", "--password-stdin", "--iterations", "100"][..],
            "pw\n",
        ),
        (
            &["create", "x", "--password-stdin", "--mechanism", "MD5"][..],
            "pw\n",
        ),
        (&["create", "x"][..], "pw\n"),
        (&["delete", "nobody"][..], ""),
    ] {
        assert!(!user(dir.path(), args, stdin).status.success(), "{args:?}");
    }
    assert!(user(dir.path(), &["delete", "admin"], "").status.success());
    assert_eq!(
        stdout(&user(dir.path(), &["list"], "")),
        "app\tSCRAM-SHA-512\t4096\n"
    );
}
