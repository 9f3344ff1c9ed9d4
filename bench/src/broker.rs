//! What a load needs of the broker under it, whichever broker it is (kfdb in `kfdb.rs`, Apache
//! Kafka in `kafka.rs`): where to connect, and its process, for CPU time and memory. A leaf: the
//! trait and /proc readings, nothing that starts a process.

use crate::procfs;

pub trait Broker {
    /// The Kafka listener, `127.0.0.1:<port>`.
    fn bootstrap(&self) -> &str;

    /// The broker's process id.
    fn pid(&self) -> u32;

    /// The broker's CPU time so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid())
    }

    /// A field of the broker's /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        procfs::status_kib(self.pid(), field)
    }
}
