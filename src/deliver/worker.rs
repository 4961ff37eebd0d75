//! A run: a dispatcher claiming batches from the ledger, `concurrency` workers each holding one
//! connection, a shared rate limit, per-message timeouts and retries with backoff — and a
//! [`Breaker`] that stops the whole run when the fault is the server's or the disk's rather
//! than one recipient's, so that no error ever turns into failed subscribers.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::committer::{Counts, Ledger};
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

/// Server faults in a row (over all workers) after which the run stops.
const SERVER_FAULTS: u32 = 3;

/// Stops a run at the first fault that no retry of one message can mend: a server that cannot
/// be reached, refuses the login or the sender, an `outbox/` that cannot be written, a ledger
/// that cannot commit. Transient server faults get a short, bounded retry first.
pub struct Breaker {
    /// Cancelled when the run must stop: tripped here, or the caller's stop.
    run: CancellationToken,
    cause: std::sync::Mutex<Option<String>>,
    streak: AtomicU32,
}

impl Breaker {
    fn new(stop: &CancellationToken) -> Breaker {
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
    fn fault(&self, cause: &str, permanent: bool) -> Option<Duration> {
        let n = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if permanent || n >= SERVER_FAULTS {
            self.trip(cause.to_string());
            return None;
        }
        tracing::warn!("{cause}; trying again");
        Some(Duration::from_millis(300 * u64::from(n)))
    }

    fn healthy(&self) {
        self.streak.store(0, Ordering::Relaxed);
    }

    /// Why the run was stopped, if it was tripped.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

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
        let job_rx = Arc::new(Mutex::new(job_rx));
        let limiter =
            NonZeroU32::new(this.rate).map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r))));
        let mut workers = Vec::new();
        let mut spawn = |rx: Jobs, lane: Lane| {
            let (this, ledger, limiter, breaker) = (
                this.clone(),
                ledger.clone(),
                limiter.clone(),
                breaker.clone(),
            );
            workers.push(tokio::spawn(async move {
                this.worker(rx, ledger, limiter, lane, &breaker).await
            }));
        };
        for _ in 0..this.concurrency {
            spawn(job_rx.clone(), Lane::default());
        }
        // A lane per paced group, fed without bound so that a slow carrier never holds up the
        // other domains: they finish first, and the carriers' queues keep flowing.
        let mut lanes = Vec::new();
        for g in &this.pacing {
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

        // Dispatcher: claim a batch, queue it, until nothing is pending or we are told to stop.
        let mut failure = None;
        'claims: while !stop.is_cancelled() {
            let jobs = match ledger.claim(this.concurrency * CLAIM_PER_WORKER) {
                Ok(jobs) if jobs.is_empty() => break,
                Ok(jobs) => jobs,
                Err(e) => {
                    failure = Some(DeliverError::from(e));
                    break;
                }
            };
            for job in jobs {
                let lane = super::pacing::group_of(&this.pacing, &job.email)
                    .map_or(&job_tx, |g| &lanes[g]);
                tokio::select! {
                    r = lane.send(job) => if r.is_err() { break 'claims },
                    _ = stop.cancelled() => break 'claims,
                }
            }
        }
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

    async fn worker(
        &self,
        jobs: Jobs,
        ledger: Arc<Ledger>,
        limiter: Option<Arc<DefaultDirectRateLimiter>>,
        lane: Lane,
        breaker: &Breaker,
    ) {
        let stop = &breaker.run;
        let mut conn: Option<Connection> = None;
        let mut on_connection = 0u32;
        loop {
            // After a stop, jobs still queued stay `sending` and are requeued by the caller.
            if stop.is_cancelled() {
                break;
            }
            let next = tokio::select! {
                j = async { jobs.lock().await.recv().await } => j,
                _ = stop.cancelled() => None,
            };
            let Some(job) = next else {
                break;
            };
            let reader = crate::server::Link::Reader(&self.key, &job.address);
            let unsubscribe = crate::server::unsubscribe_url(&self.public_base, reader);
            let message = self.template.render(&Recipient {
                email: &job.email,
                name: &job.name,
                unsubscribe_url: &unsubscribe,
                message_id: job.message_id.clone(),
            });
            let mut attempts = job.attempts;
            let outcome = match message {
                Err(e) => Outcome::Failed {
                    reply: e.to_string(),
                    bounce: None,
                },
                Ok(message) => loop {
                    attempts += 1;
                    if let Some(l) = &limiter {
                        l.until_ready().await;
                    }
                    if let Some(l) = &lane.limiter {
                        l.until_ready().await;
                    }
                    // A paced lane opens a new connection every `per_connection` messages.
                    if lane.per_connection.is_some_and(|n| on_connection >= n) {
                        if let Some(c) = conn.take() {
                            c.close().await;
                        }
                        on_connection = 0;
                    }
                    if conn.is_none() {
                        on_connection = 0;
                    }
                    match self.attempt(&mut conn, &job.email, &message).await {
                        Ok(reply) => {
                            breaker.healthy();
                            on_connection += 1;
                            break Outcome::Sent { reply };
                        }
                        Err(SendError::Permanent { reply, stage }) => {
                            breaker.healthy();
                            // Read like a bounce report, by the one verdict function.
                            let bounce = crate::bounces::smtp_refusal(&job.address, &reply, stage);
                            break Outcome::Failed {
                                reply,
                                bounce: Some(bounce),
                            };
                        }
                        Err(SendError::Server { cause, permanent }) => {
                            // Not this subscriber's doing: the attempt does not count.
                            attempts -= 1;
                            if let Some(c) = conn.take() {
                                c.close().await;
                            }
                            let Some(wait) = breaker.fault(&cause, permanent) else {
                                break Outcome::Deferred { reply: cause };
                            };
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = stop.cancelled() => break Outcome::Deferred { reply: cause },
                            }
                        }
                        Err(SendError::Transient(reply)) => {
                            if let Some(c) = conn.take() {
                                c.close().await;
                            }
                            let tries = (attempts - job.attempts) as u32;
                            if tries >= self.retry.attempts || stop.is_cancelled() {
                                break Outcome::Deferred { reply };
                            }
                            tracing::debug!(to = %job.email, %reply, "transient failure; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(self.retry.backoff(tries)) => {}
                                _ = stop.cancelled() => break Outcome::Deferred { reply },
                            }
                        }
                    }
                },
            };
            ledger.report(job.address, attempts, outcome);
        }
        if let Some(c) = conn {
            c.close().await;
        }
    }

    /// One try: (re)connect if needed, then send within the timeout.
    async fn attempt(
        &self,
        conn: &mut Option<Connection>,
        to: &str,
        message: &str,
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
                            let from = match &self.verp {
                                Some((local, domain)) => {
                                    let tag = self.key.verp_tag(self.issue, to);
                                    format!("{local}+{tag}@{domain}")
                                }
                                None => self.template.envelope_from.clone(),
                            };
                            c.send(&from, to, message).await
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
