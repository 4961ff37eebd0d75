//! A run: a dispatcher claiming batches from the ledger, `concurrency` workers each holding one
//! connection, a shared rate limit, per-message timeouts and retries with backoff — and a
//! [`Breaker`](super::breaker::Breaker) that stops the whole run when the fault is the
//! server's or the disk's rather than one recipient's, so that no error ever turns into failed
//! subscribers.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::breaker::Breaker;
use super::committer::{Counts, Ledger, Receipt};
use super::smtp::{Connection, Target};
use super::{DeliverError, Retry, SendError};
use crate::message::{Recipient, Template};
use crate::store::{DeliveryJob, Outcome, Store};
use crate::unsubscribe::Key;

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(Target),
    /// The embedded default: one `.eml` file per message in this folder.
    Outbox(PathBuf),
}

/// Everything a run needs.
pub struct Run {
    pub issue: i64,
    pub template: Arc<Template>,
    pub key: Key,
    pub public_base: String,
    pub transport: Transport,
    pub retry: Retry,
    pub concurrency: usize,
    /// Messages per second over all workers; 0 = unlimited.
    pub rate: u32,
    pub progress: bool,
    /// `bounces.address` split at `@`: messages go out from `local+<tag>@domain` (VERP).
    pub verp: Option<(String, String)>,
    /// Paced destination groups (SMTP only): each has a lane of its own.
    pub pacing: Vec<super::pacing::Group>,
}

/// What a paced lane's workers share: its steady rate, and how many messages one connection
/// carries.
#[derive(Clone, Default)]
struct Lane {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    per_connection: Option<u32>,
}

type Jobs = Arc<Mutex<tokio::sync::mpsc::Receiver<DeliveryJob>>>;

/// Deliveries claimed from the ledger at a time, per worker.
const CLAIM_PER_WORKER: usize = 64;

impl Run {
    /// Sends every pending delivery of the issue; returns the store, this run's counts and,
    /// when the run was stopped early by a fault, its cause.
    pub async fn execute(
        self,
        store: Store,
        stop: CancellationToken,
    ) -> Result<(Store, Counts, Option<String>), DeliverError> {
        let total = store.count_in(self.issue, "pending")?;
        let progress = (self.progress && total > 0).then(|| {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
        let ledger = Arc::new(Ledger::new(store, self.issue, progress.clone()));
        let breaker = Arc::new(Breaker::new(&stop));
        let finished = Arc::new(Notify::new());
        let committer = {
            let (ledger, finished, breaker) = (ledger.clone(), finished.clone(), breaker.clone());
            tokio::spawn(async move {
                let r = ledger.committer(&finished).await;
                if let Err(e) = &r {
                    // Sending on without recording would repeat every message on resume.
                    breaker.trip(format!("cannot record deliveries in the ledger: {e}"));
                }
                r
            })
        };
        let stop = breaker.run.clone();

        let this = Arc::new(self);
        let (job_tx, job_rx) =
            tokio::sync::mpsc::channel::<DeliveryJob>(this.concurrency * CLAIM_PER_WORKER);
        let (workers, lanes) = this.spawn_workers(job_rx, &ledger, &breaker);
        let failure = this.dispatch(&ledger, &job_tx, &lanes, &stop).await.err();
        drop(job_tx);
        drop(lanes);
        for w in workers {
            let _ = w.await;
        }
        finished.notify_one();
        let committed = committer
            .await
            .map_err(|e| DeliverError::Internal(format!("ledger task: {e}")))?;
        if let Some(pb) = progress {
            pb.finish_and_clear();
        }
        let ledger = Arc::try_unwrap(ledger)
            .map_err(|_| DeliverError::Internal("ledger still shared".into()))?;
        let (store, counts) = ledger.finish();
        committed?;
        match failure {
            Some(e) => Err(e),
            None => Ok((store, counts, breaker.cause())),
        }
    }

    /// Starts `concurrency` workers on the common queue, and for each paced group a lane of
    /// its own with its connections; returns the workers and the lanes' senders.
    #[allow(clippy::type_complexity)]
    fn spawn_workers(
        self: &Arc<Self>,
        job_rx: tokio::sync::mpsc::Receiver<DeliveryJob>,
        ledger: &Arc<Ledger>,
        breaker: &Arc<Breaker>,
    ) -> (
        Vec<tokio::task::JoinHandle<()>>,
        Vec<tokio::sync::mpsc::Sender<DeliveryJob>>,
    ) {
        let job_rx = Arc::new(Mutex::new(job_rx));
        let limiter =
            NonZeroU32::new(self.rate).map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r))));
        let mut workers = Vec::new();
        let mut spawn = |rx: Jobs, lane: Lane| {
            let (this, ledger, limiter, breaker) = (
                self.clone(),
                ledger.clone(),
                limiter.clone(),
                breaker.clone(),
            );
            workers.push(tokio::spawn(async move {
                this.worker(rx, ledger, limiter, lane, &breaker).await
            }));
        };
        for _ in 0..self.concurrency {
            spawn(job_rx.clone(), Lane::default());
        }
        // A lane per paced group, fed without bound so that a slow carrier never holds up the
        // other domains: they finish first, and the carriers' queues keep flowing.
        let mut lanes = Vec::new();
        for g in &self.pacing {
            let (tx, rx) = tokio::sync::mpsc::channel::<DeliveryJob>(1 << 20);
            let rx = Arc::new(Mutex::new(rx));
            let limiter = g.gap().and_then(|gap| {
                Quota::with_period(gap)
                    .map(|q| Arc::new(RateLimiter::direct(q.allow_burst(NonZeroU32::MIN))))
            });
            let lane = Lane {
                limiter,
                per_connection: Some(g.limits.per_connection),
            };
            for _ in 0..g.limits.connections.max(1) {
                spawn(rx.clone(), lane.clone());
            }
            lanes.push(tx);
        }
        (workers, lanes)
    }

    /// The dispatcher: claims a batch, queues each job on its lane, until nothing is pending
    /// or the run stops.
    async fn dispatch(
        &self,
        ledger: &Ledger,
        common: &tokio::sync::mpsc::Sender<DeliveryJob>,
        lanes: &[tokio::sync::mpsc::Sender<DeliveryJob>],
        stop: &CancellationToken,
    ) -> Result<(), DeliverError> {
        while !stop.is_cancelled() {
            let jobs = ledger.claim(self.concurrency * CLAIM_PER_WORKER)?;
            if jobs.is_empty() {
                break;
            }
            for job in jobs {
                let lane =
                    super::pacing::group_of(&self.pacing, &job.email).map_or(common, |g| &lanes[g]);
                tokio::select! {
                    r = lane.send(job) => if r.is_err() { return Ok(()) },
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// One worker: takes jobs from its lane until none are left or the run stops, each on the
    /// worker's one connection.
    async fn worker(
        &self,
        jobs: Jobs,
        ledger: Arc<Ledger>,
        limiter: Option<Arc<DefaultDirectRateLimiter>>,
        lane: Lane,
        breaker: &Breaker,
    ) {
        let stop = &breaker.run;
        let mut link = Link::default();
        // This connection's last two outcomes not known to be recorded, the older first.
        let mut unrecorded: [Option<Receipt>; 2] = [None, None];
        // The job whose envelope went out with the last message's content.
        let mut ahead: Option<DeliveryJob> = None;
        let looks_ahead =
            limiter.is_none() && lane.limiter.is_none() && lane.per_connection.is_none();
        loop {
            // After a stop, jobs still queued (and the one looked ahead to) stay `sending` and
            // are requeued by the caller.
            if stop.is_cancelled() {
                break;
            }
            let next = match ahead.take() {
                Some(job) => Some(job),
                None => tokio::select! {
                    j = async { jobs.lock().await.recv().await } => j,
                    _ = stop.cancelled() => None,
                },
            };
            let Some(job) = next else {
                break;
            };
            // The outcome before last is recorded before the next message starts: a crash
            // repeats at most the one acknowledged and unrecorded, and the one in flight.
            if let Some(older) = unrecorded[0] {
                tokio::select! {
                    _ = ledger.recorded(older) => {}
                    _ = stop.cancelled() => break,
                }
            }
            let reader = crate::unsubscribe::Link::Reader(&self.key, &job.address);
            let unsubscribe = crate::unsubscribe::unsubscribe_url(&self.public_base, reader);
            let message = self.template.render(&Recipient {
                email: &job.email,
                name: &job.name,
                unsubscribe_url: &unsubscribe,
                message_id: job.message_id.clone(),
            });
            let (attempts, outcome) = match message {
                Err(e) => {
                    // Its envelope may have gone out ahead: only a new connection ends that
                    // transaction without charging the next message a failed try.
                    link.close().await;
                    let reply = e.to_string();
                    (
                        job.attempts,
                        Outcome::Failed {
                            reply,
                            bounce: None,
                        },
                    )
                }
                Ok(message) => {
                    // The next job, if one is queued already, opens its transaction on this
                    // connection while this message is answered (unpaced lanes only).
                    ahead = jobs
                        .try_lock()
                        .ok()
                        .filter(|_| looks_ahead)
                        .and_then(|mut queue| queue.try_recv().ok());
                    let next = ahead.as_ref().map(|j| j.email.as_str());
                    let pace = (limiter.as_deref(), &lane);
                    self.deliver(&mut link, &job, &message, next, pace, breaker)
                        .await
                }
            };
            unrecorded = [
                unrecorded[1],
                Some(ledger.report(job.address, attempts, outcome)),
            ];
        }
        link.close().await;
    }

    /// Tries one message until it is sent, refused for its recipient, or deferred (retries
    /// used up, the server's fault, the run stopped). Returns the job's attempts, counting
    /// only the tries that were about this recipient, and the outcome.
    async fn deliver(
        &self,
        link: &mut Link,
        job: &DeliveryJob,
        message: &str,
        next: Option<&str>,
        pace: (Option<&DefaultDirectRateLimiter>, &Lane),
        breaker: &Breaker,
    ) -> (i64, Outcome) {
        let stop = &breaker.run;
        let mut attempts = job.attempts;
        loop {
            attempts += 1;
            link.pace(pace.0, pace.1).await;
            match self
                .attempt(&mut link.conn, &job.email, message, next)
                .await
            {
                Ok(reply) => {
                    breaker.healthy();
                    link.on_connection += 1;
                    return (attempts, Outcome::Sent { reply });
                }
                Err(SendError::Permanent { reply, stage }) => {
                    breaker.healthy();
                    // Read like a bounce report, by the one verdict function.
                    let bounce = crate::bounces::smtp_refusal(&job.address, &reply, stage);
                    let bounce = Some(bounce);
                    return (attempts, Outcome::Failed { reply, bounce });
                }
                Err(SendError::Server { cause, permanent }) => {
                    // Not this subscriber's doing: the attempt does not count.
                    attempts -= 1;
                    link.close().await;
                    let wait = breaker.fault(&cause, permanent);
                    if !sleep_unless(wait, stop).await {
                        return (attempts, Outcome::Deferred { reply: cause });
                    }
                }
                Err(SendError::Transient(reply)) => {
                    link.close().await;
                    let tries = (attempts - job.attempts) as u32;
                    if tries >= self.retry.attempts || stop.is_cancelled() {
                        return (attempts, Outcome::Deferred { reply });
                    }
                    tracing::debug!(to = %job.email, %reply, "transient failure; retrying");
                    if !sleep_unless(Some(self.retry.backoff(tries)), stop).await {
                        return (attempts, Outcome::Deferred { reply });
                    }
                }
            }
        }
    }

    /// One try: (re)connect if needed, then send within the timeout — with the envelope of
    /// the `next` recipient's message when there is one.
    async fn attempt(
        &self,
        conn: &mut Option<Connection>,
        to: &str,
        message: &str,
        next: Option<&str>,
    ) -> Result<String, SendError> {
        match &self.transport {
            Transport::Outbox(dir) => {
                let name = format!("{:05}-{}.eml", self.issue, file_safe(to));
                let path = dir.join(&name);
                crate::files::write_private(&path, message.as_bytes())
                    .map(|_| "written".to_string())
                    .map_err(|e| SendError::Server {
                        cause: format!("cannot write outbox/{name}: {}", io_cause(&e)),
                        permanent: true,
                    })
            }
            Transport::Smtp(target) => {
                let t = self.retry.timeout;
                let exchange = async {
                    if conn.is_none() {
                        *conn = Some(Connection::open(target, t).await?);
                    }
                    match conn.as_mut() {
                        Some(c) => {
                            let next = next.map(|n| (self.envelope_from(n), n));
                            let next = next.as_ref().map(|(from, to)| (from.as_str(), *to));
                            c.send(&self.envelope_from(to), to, message, next).await
                        }
                        None => Err(SendError::Transient("no connection".into())),
                    }
                };
                tokio::time::timeout(t, exchange).await.unwrap_or_else(|_| {
                    Err(SendError::Transient(format!(
                        "no answer within {}s",
                        t.as_secs()
                    )))
                })
            }
        }
    }
}

impl Run {
    /// The envelope sender of `to`'s message: `local+<tag>@domain` with VERP.
    fn envelope_from(&self, to: &str) -> String {
        match &self.verp {
            Some((local, domain)) => {
                let tag = self.key.verp_tag(self.issue, to);
                format!("{local}+{tag}@{domain}")
            }
            None => self.template.envelope_from.clone(),
        }
    }
}

/// A worker's connection, and how many messages it carried.
#[derive(Default)]
struct Link {
    conn: Option<Connection>,
    on_connection: u32,
}

impl Link {
    /// Waits for the run's rate and the lane's, and opens a new connection every
    /// `per_connection` messages of a paced lane.
    async fn pace(&mut self, limiter: Option<&DefaultDirectRateLimiter>, lane: &Lane) {
        if let Some(l) = limiter {
            l.until_ready().await;
        }
        if let Some(l) = &lane.limiter {
            l.until_ready().await;
        }
        if lane.per_connection.is_some_and(|n| self.on_connection >= n) {
            self.close().await;
        }
        if self.conn.is_none() {
            self.on_connection = 0;
        }
    }

    async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }
}

/// Sleeps `wait` unless the run stops first (or there is no wait: the run was stopped);
/// whether it slept.
async fn sleep_unless(wait: Option<Duration>, stop: &CancellationToken) -> bool {
    let Some(wait) = wait else {
        return false;
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stop.cancelled() => false,
    }
}

/// An address as a file name: one file per recipient, so writing it again replaces it.
fn file_safe(address: &str) -> String {
    address
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An I/O error without the temporary file's name that `tempfile` appends.
fn io_cause(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.split_once(" at path ") {
        Some((cause, _)) => cause.to_string(),
        None => s,
    }
}
