//! Apache Kafka 4.4 as the other broker of the side-by-side scenarios: one KRaft node that is
//! broker and controller, on free loopback ports, its log directory fresh under `KFDB_BENCH_DIR`
//! and formatted first (`kafka.tools.StorageTool format`), started as Kafka's own start script
//! starts it (1 GiB heap, G1 with its pause target) and stopped with SIGTERM when dropped.
//!
//! The jars: `KAFKA_CLASSPATH` if set, else the runtime classpath the Maven build of
//! `compat-tests/java` writes (`mvn -q -f compat-tests/java/pom.xml package`: kafka_2.13,
//! kafka-tools and their dependencies from Maven Central). Java: `$JAVA_HOME/bin/java`, else
//! `java` on the PATH.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::broker::Broker;
use crate::workload::bench_dir;

const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A restart loads every partition's log: minutes with 100,000 of them.
const RESTART_TIMEOUT: Duration = Duration::from_secs(900);
/// A clean shutdown of a broker with 100,000 partitions takes over a minute; SIGKILL instead
/// would make the restart recover every log, which is not what is being measured.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);

/// `kafka-server-start.sh`'s heap and `kafka-run-class.sh`'s JVM performance options (Kafka 4.x).
const JVM_OPTS: &[&str] = &[
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

/// INFO and above to stdout.
const LOG4J2: &str = "status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
";

/// How Kafka is configured beyond what one node needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Kafka's defaults: the page cache, flushed by the OS (`log.flush.interval.messages` unbounded).
    Defaults,
    /// `log.flush.interval.messages=1`: every append is fsync'd before it is acknowledged, as kfdb does.
    FlushEveryMessage,
}

/// One Apache Kafka process; dropping it stops Kafka and removes its directory.
pub struct Kafka {
    child: Child,
    bootstrap: String,
    log: PathBuf,
    dir: tempfile::TempDir,
    cp: String,
}

fn classpath() -> String {
    if let Ok(cp) = std::env::var("KAFKA_CLASSPATH") {
        return cp;
    }
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/java/target/classpath.txt");
    match std::fs::read_to_string(&file) {
        Ok(cp) => cp.trim().to_string(),
        Err(e) => panic!(
            "Apache Kafka's classpath: {} ({e}); run `mvn -q -f compat-tests/java/pom.xml package` in the \
             repository root, or set KAFKA_CLASSPATH",
            file.display()
        ),
    }
}

fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// A cluster id as Kafka writes them: URL-safe base64 of 16 random bytes, not starting with '-'
/// (the format tool would take it for an option).
fn cluster_id() -> String {
    loop {
        let id =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// The last `bytes` of a file, lossily as text ("" if it cannot be read).
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

impl Kafka {
    /// Format a fresh log directory and start Kafka on it; panics if it does not come up.
    pub fn start(durability: Durability) -> Kafka {
        let dir = tempfile::Builder::new()
            .prefix("kafka-bench-")
            .tempdir_in(bench_dir())
            .expect("Kafka's directory");
        let (port, cport) = (kfdb_harness::free_port(), kfdb_harness::free_port());
        let bootstrap = format!("127.0.0.1:{port}");
        let mut props = vec![
            ("process.roles", "broker,controller".to_string()),
            ("node.id", "1".into()),
            ("controller.quorum.voters", format!("1@127.0.0.1:{cport}")),
            (
                "listeners",
                format!("PLAINTEXT://{bootstrap},CONTROLLER://127.0.0.1:{cport}"),
            ),
            ("advertised.listeners", format!("PLAINTEXT://{bootstrap}")),
            ("controller.listener.names", "CONTROLLER".into()),
            ("inter.broker.listener.name", "PLAINTEXT".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            (
                "log.dirs",
                dir.path().join("kafka-logs").display().to_string(),
            ),
            ("offsets.topic.replication.factor", "1".into()),
            ("transaction.state.log.replication.factor", "1".into()),
            ("transaction.state.log.min.isr", "1".into()),
            (
                "share.coordinator.state.topic.replication.factor",
                "1".into(),
            ),
            ("share.coordinator.state.topic.min.isr", "1".into()),
        ];
        if durability == Durability::FlushEveryMessage {
            props.push(("log.flush.interval.messages", "1".into()));
        }
        let config = dir.path().join("server.properties");
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&config, text).expect("write server.properties");
        // Kafka's own log4j2 configuration logs INFO to files; this one logs INFO to the console,
        // which goes to `log` (and "Kafka Server started" there says it is up).
        std::fs::write(dir.path().join("log4j2.properties"), LOG4J2)
            .expect("write log4j2.properties");
        let cp = classpath();
        let format = Command::new(java())
            .args([
                "-Xmx256m",
                "-cp",
                &cp,
                "kafka.tools.StorageTool",
                "format",
                "-t",
            ])
            .arg(cluster_id())
            .arg("-c")
            .arg(&config)
            .env("KFDB_JVM_LOG_LEVEL", "WARN")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", java().display()));
        assert!(
            format.status.success(),
            "kafka-storage format failed: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let log = dir.path().join("kafka.log");
        let mut kafka = Kafka {
            child: spawn(&cp, dir.path(), &log),
            bootstrap,
            log,
            dir,
            cp,
        };
        let took = kafka
            .wait_ready(0, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "  Apache Kafka pid {} on {} ({}; data in {}; started in {:.1} s)",
            kafka.child.id(),
            kafka.bootstrap,
            match durability {
                Durability::Defaults => "its defaults",
                Durability::FlushEveryMessage => "log.flush.interval.messages=1",
            },
            kafka.dir.path().display(),
            took.as_secs_f64()
        );
        kafka
    }

    /// Stop Kafka (SIGTERM, as `kafka-server-stop.sh`) and start it again on the same data; an
    /// error if it exits or is not up within RESTART_TIMEOUT.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let since = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        self.child = spawn(&self.cp, self.dir.path(), &self.log);
        self.wait_ready(since, RESTART_TIMEOUT).map(|_| ())
    }

    /// Wait until the port accepts connections and the log, after byte `since`, says "Kafka
    /// Server started"; an error if Kafka exits or takes longer than `timeout`. Each look reads
    /// only what the log gained since the last (a restart over 100,000 partitions logs tens of
    /// megabytes, and this process shares the cores with the Kafka it is timing).
    fn wait_ready(&mut self, since: u64, timeout: Duration) -> Result<Duration, String> {
        const MARKER: &[u8] = b"Kafka Server started";
        let started = Instant::now();
        let (mut pos, mut seen, mut carry) = (since, false, Vec::new());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "Kafka exited while starting ({status}):\n{}",
                    tail(&self.log, 4000)
                ));
            }
            if !seen && let Ok(mut f) = File::open(&self.log) {
                let mut new = std::mem::take(&mut carry);
                if f.seek(SeekFrom::Start(pos)).is_ok() {
                    pos += f.read_to_end(&mut new).unwrap_or(0) as u64;
                }
                seen = new.windows(MARKER.len()).any(|w| w == MARKER);
                // The marker may straddle two reads.
                carry = new[new.len().saturating_sub(MARKER.len())..].to_vec();
            }
            if seen && TcpStream::connect(&self.bootstrap).is_ok() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "Kafka did not start in {timeout:?}:\n{}",
                    tail(&self.log, 4000)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait (SIGKILL after STOP_TIMEOUT).
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // `kill(1)`, as kfdb-harness stops kfdb: std has no SIGTERM, and a libc binding for one
        // call is not worth it. The child is not reaped yet, so the pid is still Kafka's.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    println!("  ! Kafka did not exit {STOP_TIMEOUT:?} after SIGTERM: killed it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// The Kafka process on the configuration in `dir`, its output appended to `log`.
fn spawn(cp: &str, dir: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("Kafka's log file");
    Command::new(java())
        .args(JVM_OPTS)
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            dir.join("log4j2.properties").display()
        ))
        .args(["-cp", cp, "kafka.Kafka"])
        .arg(dir.join("server.properties"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("start Kafka")
}

impl Broker for Kafka {
    fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.stop();
    }
}
