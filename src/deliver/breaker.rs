//! The run's breaker: a fault that is the server's or the disk's, not one recipient's, stops
//! the whole run (after a short, bounded retry when it may pass), so that no error ever turns
//! into failed subscribers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Server faults in a row (over all workers) after which the run stops.
const SERVER_FAULTS: u32 = 3;

/// Stops a run at the first fault that no retry of one message can mend: a server that cannot
/// be reached, refuses the login or the sender, an `outbox/` that cannot be written, a ledger
/// that cannot commit. Transient server faults get a short, bounded retry first.
pub struct Breaker {
    /// Cancelled when the run must stop: tripped here, or the caller's stop.
    pub(super) run: CancellationToken,
    cause: std::sync::Mutex<Option<String>>,
    streak: AtomicU32,
}

impl Breaker {
    pub(super) fn new(stop: &CancellationToken) -> Breaker {
        Breaker {
            run: stop.child_token(),
            cause: Default::default(),
            streak: AtomicU32::new(0),
        }
    }

    /// Stops the run for `cause` (the first cause given is kept).
    pub fn trip(&self, cause: String) {
        let mut c = self.cause.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            tracing::error!("stopping the run: {cause}");
            *c = Some(cause);
        }
        self.run.cancel();
    }

    /// Counts a server fault; returns the wait before trying again, or `None` when the run
    /// has been stopped.
    pub(super) fn fault(&self, cause: &str, permanent: bool) -> Option<Duration> {
        let n = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if permanent || n >= SERVER_FAULTS {
            self.trip(cause.to_string());
            return None;
        }
        tracing::warn!("{cause}; trying again");
        Some(Duration::from_millis(300 * u64::from(n)))
    }

    pub(super) fn healthy(&self) {
        self.streak.store(0, Ordering::Relaxed);
    }

    /// Why the run was stopped, if it was tripped.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
