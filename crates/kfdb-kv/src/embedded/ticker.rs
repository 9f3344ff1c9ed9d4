//! A named background thread that runs one step at once, then every `every` and whenever it is
//! woken, until it is dropped (then it stops and is joined): the memtable keeper (`reclaim`), the
//! journal trimmer (`journal`) and the memtable sealer (`rotation`) are each one.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

/// See the module documentation. Dropping it stops the thread.
pub(crate) struct Ticker {
    /// Wakes the thread; dropped to stop it.
    wake: Option<SyncSender<()>>,
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
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                step();
                while let Ok(()) | Err(RecvTimeoutError::Timeout) = woken.recv_timeout(every) {
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
            wake: Some(wake),
            thread,
        }
    }

    /// Have `step` run soon (wake-ups not yet taken coalesce). False when the thread is not
    /// running (it could not be started), so the caller does the step itself.
    pub(crate) fn wake(&self) -> bool {
        match (&self.thread, &self.wake) {
            (Some(_), Some(wake)) => match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => true,
                Err(TrySendError::Disconnected(())) => false,
            },
            _ => false,
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
