//! The ledger thread: owns the store during a run, hands out batches of deliveries and commits
//! outcomes in groups — everything that arrived while the previous commit ran goes into the
//! next one — so a commit costs once per group, not once per message.

use std::sync::mpsc;

use chrono::Utc;
use tokio::sync::oneshot;

use crate::store::{DeliveryJob, Outcome, Store, StoreError};

/// Work for the ledger thread.
pub enum Msg {
    /// Claim up to `n` pending deliveries (marked `sending`).
    Claim(usize, oneshot::Sender<Result<Vec<DeliveryJob>, String>>),
    /// A finished delivery: address, attempts so far, outcome.
    Done(String, i64, Outcome),
}

/// Counts of this run's outcomes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
}

/// Runs the ledger loop until every sender is gone; returns the store and the counts.
pub fn run(
    mut store: Store,
    issue: i64,
    rx: mpsc::Receiver<Msg>,
    progress: Option<indicatif::ProgressBar>,
) -> Result<(Store, Counts), StoreError> {
    let mut counts = Counts::default();
    let mut batch: Vec<(String, i64, Outcome)> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Claim(n, reply) => {
                    // Outcomes first, so a claim never sees a row still marked `sending` by us.
                    flush(&mut store, issue, &mut batch)?;
                    let _ = reply.send(store.claim(issue, n).map_err(|e| e.to_string()));
                }
                Msg::Done(address, attempts, outcome) => {
                    match outcome {
                        Outcome::Sent { .. } => counts.sent += 1,
                        Outcome::Failed { .. } => counts.failed += 1,
                        Outcome::Deferred { .. } => counts.deferred += 1,
                    }
                    batch.push((address, attempts, outcome));
                }
            }
        }
        flush(&mut store, issue, &mut batch)?;
        if let Some(pb) = &progress {
            pb.set_position(counts.sent + counts.failed + counts.deferred);
        }
    }
    flush(&mut store, issue, &mut batch)?;
    Ok((store, counts))
}

fn flush(
    store: &mut Store,
    issue: i64,
    batch: &mut Vec<(String, i64, Outcome)>,
) -> Result<(), StoreError> {
    if !batch.is_empty() {
        store.record_outcomes(issue, batch, Utc::now())?;
        batch.clear();
    }
    Ok(())
}
