//! The ledger of a run: hands out batches of deliveries and commits outcomes in groups.
//!
//! Workers report an outcome and go on; a committer task writes everything reported since its
//! last commit in one transaction (group commit). A commit is made when a worker needs one:
//! before a connection starts its next message, the outcome it reported one message earlier
//! must be recorded — so a connection never has more than one acknowledged message unrecorded
//! (besides the one in flight), and one commit carries every connection's outcomes since the
//! last (committing each message alone cost half the sender's CPU in system calls). It all
//! runs on the sending runtime's thread: a commit blocks it for a fraction of a millisecond,
//! which is cheaper than waking another thread per commit.

use std::sync::Mutex;

use chrono::Utc;
use tokio::sync::{watch, Notify};

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
    /// How many outcomes were reported in all: the last one's [`Receipt`].
    reported: u64,
    /// How many transactions recorded them (for the debug log).
    commits: u64,
    counts: Counts,
}

/// Which outcome a report was, in the order reported: recorded once the ledger's count of
/// committed outcomes reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Receipt(u64);

/// The store during a run, shared by the dispatcher, the workers and the committer.
pub struct Ledger {
    store: Mutex<Store>,
    issue: i64,
    reported: Mutex<Reported>,
    /// The last address claimed: claims walk the ledger in address order.
    cursor: Mutex<String>,
    /// How many reported outcomes are committed.
    committed: watch::Sender<u64>,
    /// A worker waits for a commit.
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
            committed: watch::Sender::new(0),
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

    /// Reports a finished delivery: address, attempts so far, outcome. It is recorded by the
    /// next commit, which [`Ledger::recorded`] asks for.
    pub fn report(&self, address: String, attempts: i64, outcome: Outcome) -> Receipt {
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
        r.reported += 1;
        Receipt(r.reported)
    }

    /// Waits until the outcome of `receipt` is committed, asking for a commit if it is not.
    /// Never returns if the committer has stopped (it failed, and the run is being stopped):
    /// callers wait for the run's stop beside it.
    pub async fn recorded(&self, receipt: Receipt) {
        let mut committed = self.committed.subscribe();
        if *committed.borrow_and_update() >= receipt.0 {
            return;
        }
        self.wake.notify_one();
        if committed.wait_for(|&c| c >= receipt.0).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Commits everything reported so far.
    pub fn commit(&self) -> Result<(), StoreError> {
        let (batch, upto, done) = {
            let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let c = &r.counts;
            let done = c.sent + c.failed + c.deferred;
            if !r.batch.is_empty() {
                r.commits += 1;
            }
            (std::mem::take(&mut r.batch), r.reported, done)
        };
        if !batch.is_empty() {
            self.store()
                .record_outcomes(self.issue, &batch, Utc::now())?;
        }
        self.committed.send_replace(upto);
        if let Some(pb) = &self.progress {
            pb.set_position(done);
        }
        Ok(())
    }

    /// Commits whenever a worker waits for one, until `finished` fires; then a last time.
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
        let r = self
            .reported
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        tracing::debug!(outcomes = r.reported, commits = r.commits, "ledger");
        let counts = r.counts;
        (
            self.store.into_inner().unwrap_or_else(|p| p.into_inner()),
            counts,
        )
    }
}
