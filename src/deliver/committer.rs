//! The ledger of a run: hands out batches of deliveries and commits outcomes in groups.
//!
//! Workers report an outcome and go on; a committer task writes everything reported since its
//! last commit in one transaction (group commit) — at most one commit's worth of acknowledged
//! messages is ever unrecorded. It all runs on the sending runtime's thread: a commit blocks
//! it for a fraction of a millisecond, which is cheaper than waking another thread per message.

use std::sync::Mutex;

use chrono::Utc;
use tokio::sync::Notify;

use crate::store::{DeliveryJob, Outcome, Store, StoreError};

/// Counts of this run's outcomes.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    /// Why the last deferred delivery was deferred.
    pub last_deferral: Option<String>,
}

/// Outcomes reported and not yet committed (address, attempts, outcome), and the run's counts.
#[derive(Default)]
struct Reported {
    batch: Vec<(String, i64, Outcome)>,
    counts: Counts,
}

/// The store during a run, shared by the dispatcher, the workers and the committer.
pub struct Ledger {
    store: Mutex<Store>,
    issue: i64,
    reported: Mutex<Reported>,
    /// The last address claimed: claims walk the ledger in address order.
    cursor: Mutex<String>,
    wake: Notify,
    progress: Option<indicatif::ProgressBar>,
}

impl Ledger {
    pub fn new(store: Store, issue: i64, progress: Option<indicatif::ProgressBar>) -> Ledger {
        Ledger {
            store: Mutex::new(store),
            issue,
            reported: Mutex::new(Reported::default()),
            cursor: Mutex::new(String::new()),
            wake: Notify::new(),
            progress,
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims up to `n` pending deliveries (marked `sending`).
    pub fn claim(&self, n: usize) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let jobs = self.store().claim(self.issue, &cursor, n)?;
        if let Some(last) = jobs.last() {
            cursor.clone_from(&last.address);
        }
        Ok(jobs)
    }

    /// Reports a finished delivery: address, attempts so far, outcome.
    pub fn report(&self, address: String, attempts: i64, outcome: Outcome) {
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Outcome::Sent { .. } => r.counts.sent += 1,
            Outcome::Failed { .. } => r.counts.failed += 1,
            Outcome::Deferred { reply } => {
                r.counts.deferred += 1;
                r.counts.last_deferral = Some(reply.clone());
            }
        }
        r.batch.push((address, attempts, outcome));
        drop(r);
        self.wake.notify_one();
    }

    /// Commits everything reported so far.
    pub fn commit(&self) -> Result<(), StoreError> {
        let (batch, done) = {
            let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let c = &r.counts;
            let done = c.sent + c.failed + c.deferred;
            (std::mem::take(&mut r.batch), done)
        };
        if !batch.is_empty() {
            self.store()
                .record_outcomes(self.issue, &batch, Utc::now())?;
        }
        if let Some(pb) = &self.progress {
            pb.set_position(done);
        }
        Ok(())
    }

    /// Commits whenever something was reported, until `finished` fires; then a last time.
    pub async fn committer(&self, finished: &Notify) -> Result<(), StoreError> {
        loop {
            tokio::select! {
                _ = self.wake.notified() => self.commit()?,
                _ = finished.notified() => return self.commit(),
            }
        }
    }

    /// The store back, and the counts.
    pub fn finish(self) -> (Store, Counts) {
        let counts = self
            .reported
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .counts;
        (
            self.store.into_inner().unwrap_or_else(|p| p.into_inner()),
            counts,
        )
    }
}
