//! The kfdb process: how it is started (`Options`), the guard that owns it (`Kfdb`) and how it
//! ended (`Exit`). Starting waits for the listener; stopping is SIGTERM, then SIGKILL after the
//! stop timeout. Nothing here knows Kafka: "ready" means the port accepts a TCP connection.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, log};

/// How long kfdb may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the start and stop loops look again.
const POLL: Duration = Duration::from_millis(20);
/// Log lines quoted in the error of a kfdb that exited during start.
const START_ERROR_LOG_LINES: usize = 20;
/// Starts tried when kfdb finds its port taken (between `free_port` and kfdb's bind another
/// process can take it, e.g. as the local port of an outgoing connection).
const START_ATTEMPTS: usize = 3;

/// How to run `kfdb serve`. The harness always passes `--listen` and `--advertised-listener` (the
/// free port) and `--data-dir`, and sets `NO_COLOR=1` so the log has plain level names; everything
/// else kfdb reads from its flags and environment is the caller's (`args`, `env`, or inherited),
/// except `--metrics-listen`, which takes a port of its own ([`Options::metrics_listener`]).
#[derive(Debug, Clone)]
pub struct Options {
    bin: PathBuf,
    temp_prefix: String,
    temp_parent: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    metrics: bool,
    stop_timeout: Duration,
    log_tail_on_panic: usize,
    data_dir: Option<PathBuf>,
}

impl Options {
    /// Run `bin`, in a temporary directory named `kfdb-*` in the system temp dir, SIGKILL 20 s
    /// after SIGTERM, no log printed on panic.
    pub fn new(bin: impl Into<PathBuf>) -> Options {
        Options {
            bin: bin.into(),
            temp_prefix: "kfdb-".into(),
            temp_parent: None,
            args: Vec::new(),
            envs: Vec::new(),
            metrics: false,
            stop_timeout: Duration::from_secs(20),
            log_tail_on_panic: 0,
            data_dir: None,
        }
    }

    /// Serve the data directory of an earlier (stopped) kfdb instead of a fresh one: a restart.
    /// The directory stays the earlier guard's (it goes when that guard is dropped).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Options {
        self.data_dir = Some(dir.into());
        self
    }

    /// The name prefix of the temporary directory (data directory and log file inside it).
    pub fn temp_prefix(mut self, prefix: &str) -> Options {
        self.temp_prefix = prefix.into();
        self
    }

    /// Where the temporary directory goes (the disk kfdb writes to), instead of the system temp dir.
    pub fn temp_parent(mut self, dir: impl Into<PathBuf>) -> Options {
        self.temp_parent = Some(dir.into());
        self
    }

    /// Further arguments after `serve` and the harness's own.
    pub fn args<I, S>(mut self, args: I) -> Options
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// An environment variable for kfdb (on top of the inherited environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Options {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Also start kfdb's Prometheus listener (`--metrics-listen`) on a free loopback port; see
    /// [`Kfdb::metrics_addr`].
    pub fn metrics_listener(mut self) -> Options {
        self.metrics = true;
        self
    }

    /// How long to wait after SIGTERM before SIGKILL.
    pub fn stop_timeout(mut self, timeout: Duration) -> Options {
        self.stop_timeout = timeout;
        self
    }

    /// When the guard is dropped while its thread panics (a failing test), print the last `lines`
    /// lines of kfdb's log to stderr. 0 (the default) prints nothing.
    pub fn log_tail_on_panic(mut self, lines: usize) -> Options {
        self.log_tail_on_panic = lines;
        self
    }

    /// Start kfdb and wait until its port accepts connections. Errors: the binary does not exist
    /// (`NotFound`), kfdb exited first (its last log lines in the message; `AddrInUse` if a port
    /// was taken in all of 3 attempts, each with fresh ports and directory), or it did not listen
    /// within 30 s (`TimedOut`); a started process is stopped again before the error returns.
    pub fn start(&self) -> io::Result<Kfdb> {
        let mut attempt = 1;
        loop {
            match self.start_once() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < START_ATTEMPTS => {
                    attempt += 1
                }
                started => return started,
            }
        }
    }

    fn start_once(&self) -> io::Result<Kfdb> {
        if !self.bin.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("kfdb binary {} not found", self.bin.display()),
            ));
        }
        let mut dir = tempfile::Builder::new();
        dir.prefix(&self.temp_prefix);
        let dir = match &self.temp_parent {
            Some(parent) => dir.tempdir_in(parent)?,
            None => dir.tempdir()?,
        };
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => dir.path().join("data"),
        };
        let log_path = dir.path().join("kfdb.stderr.log");
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let metrics = self.metrics.then(|| format!("127.0.0.1:{}", free_port()));
        let log = File::create(&log_path)?;
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .args(["--listen", &bootstrap])
            .args(["--advertised-listener", &bootstrap])
            .arg("--data-dir")
            .arg(&data_dir);
        if let Some(m) = &metrics {
            command.args(["--metrics-listen", m]);
        }
        let child = command
            .args(&self.args)
            .env("NO_COLOR", "1")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {}: {e}", self.bin.display())))?;
        // From here on the guard owns the process: an error or a panic below still stops it.
        let mut kfdb = Kfdb {
            child,
            bootstrap,
            metrics,
            data_dir,
            log_path,
            stop_timeout: self.stop_timeout,
            log_tail_on_panic: self.log_tail_on_panic,
            exit: None,
            _dir: dir,
        };
        kfdb.wait_listening()?;
        Ok(kfdb)
    }
}

/// A running kfdb (see the crate docs). Dropping it stops kfdb if [`Kfdb::stop`] has not.
#[derive(Debug)]
pub struct Kfdb {
    child: Child,
    bootstrap: String,
    metrics: Option<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    stop_timeout: Duration,
    log_tail_on_panic: usize,
    exit: Option<Exit>,
    // Last: the directory goes once the process has stopped (in `drop`).
    _dir: tempfile::TempDir,
}

/// How kfdb ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit status (an error if waiting for it failed).
    pub status: io::Result<ExitStatus>,
    /// It was killed: by [`Kfdb::kill`], or because it had not exited within the stop timeout
    /// after SIGTERM.
    pub killed: bool,
}

impl Exit {
    /// Exited by itself with status 0.
    pub fn is_clean(&self) -> bool {
        !self.killed && matches!(&self.status, Ok(s) if s.success())
    }
}

impl Kfdb {
    /// `127.0.0.1:<port>`: kfdb's listener, also what it advertises.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// `127.0.0.1:<port>` of kfdb's `/metrics`, if [`Options::metrics_listener`] asked for it.
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics.as_deref()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kfdb's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file kfdb's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// kfdb's log so far.
    pub fn log(&self) -> String {
        log::read(&self.log_path)
    }

    /// kfdb's log lines at WARN or ERROR level, and panic messages.
    pub fn problems(&self) -> Vec<String> {
        log::problem_lines(&self.log())
    }

    /// The last `lines` lines of kfdb's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log::tail(&self.log(), lines)
    }

    /// Stop kfdb (SIGTERM, SIGKILL after the stop timeout) unless it has already exited, and wait
    /// for it. Later calls return the same answer.
    pub fn stop(&mut self) -> &Exit {
        if self.exit.is_none() {
            let mut killed = false;
            if matches!(self.child.try_wait(), Ok(None)) {
                // kfdb shuts down cleanly on SIGTERM. `kill(1)` rather than a libc binding: this
                // crate stays dependency-free.
                let _ = Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .status();
                let deadline = Instant::now() + self.stop_timeout;
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                if matches!(self.child.try_wait(), Ok(None)) {
                    killed = true;
                    let _ = self.child.kill();
                }
            }
            let status = self.child.wait();
            self.exit = Some(Exit { status, killed });
        }
        self.exit.as_ref().expect("set above")
    }

    /// Kill kfdb at once (SIGKILL, as a crash would) unless it has already exited, and wait for
    /// it. Later calls, and [`Kfdb::stop`], return the same answer.
    pub fn kill(&mut self) -> &Exit {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let status = self.child.wait();
            self.exit = Some(Exit {
                status,
                killed: true,
            });
        }
        self.exit.as_ref().expect("set above")
    }

    fn wait_listening(&mut self) -> io::Result<()> {
        let addr: SocketAddr = self.bootstrap.parse().expect("a socket address");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = self.log();
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!(
                        "kfdb exited ({status}) before accepting connections on {}; its log:\n{}",
                        self.bootstrap,
                        log::tail(&log, START_ERROR_LOG_LINES)
                    ),
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "kfdb did not accept connections on {} within {START_TIMEOUT:?}",
                        self.bootstrap
                    ),
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Kfdb {
    fn drop(&mut self) {
        self.stop();
        if self.log_tail_on_panic > 0 && std::thread::panicking() {
            let status = &self.exit.as_ref().expect("stopped").status;
            eprintln!(
                "----- kfdb stderr ({}; exit: {status:?}) -----\n{}-----",
                self.bootstrap,
                self.log_tail(self.log_tail_on_panic)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that spawn processes: a fork in one test while another still has its
    /// fake binary open for writing would make executing that binary fail (ETXTBSY).
    static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_missing_binary_is_not_found() {
        let e = Options::new("/nonexistent/kfdb").start().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_taken_port_is_retried_with_fresh_ports() {
        use std::os::unix::fs::PermissionsExt;
        let _serial = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-kfdb");
        let count = dir.path().join("starts");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho start >> \"$STARTS\"\n\
             echo 'ERROR kfdb: binding: Address already in use (os error 98)' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Options::new(&bin)
            .env("STARTS", &count)
            .start()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let starts = std::fs::read_to_string(&count).unwrap();
        assert_eq!(starts.lines().count(), START_ATTEMPTS);
    }

    #[test]
    fn a_process_that_exits_at_once_fails_the_start_with_its_output() {
        let _serial = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
        // `sh serve --listen ...` fails: there is no script named `serve`.
        let e = Options::new("/bin/sh").start().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("before accepting connections"), "{msg}");
        assert!(msg.contains("serve"), "{msg}");
    }
}
