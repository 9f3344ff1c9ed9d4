//! A named background thread that runs one step at once and then every `every` until it is
//! dropped (then it stops and is joined): the memtable keeper (`reclaim`) and the journal trimmer
//! (`journal`) are each one.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// See the module documentation. Dropping it stops the thread.
pub(crate) struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Run `step` on a thread called `name`. If the thread cannot be started, `step` never runs
    /// and `without` (what that costs) is logged.
    pub(crate) fn start(
        name: &str,
        every: Duration,
        without: &'static str,
        mut step: impl FnMut() + Send + 'static,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                step();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    step();
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, thread = name, "{without}");
                None
            }
        };
        Self {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
