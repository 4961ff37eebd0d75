//! The work the daemon's loop hands out, off its async threads: publishing (reading `posts/`
//! and rewriting `public/`, on a blocking thread with the store lent to it) and sending an
//! issue (on a thread of its own with its own runtime, the same path as `tayori send`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::Schedule;
use crate::content::IngestOptions;
use crate::deliver;
use crate::lock::SenderLock;
use crate::publish;
use crate::render::Entry;
use crate::store::Store;
use crate::watch::Tracker;

pub(super) struct Daemon {
    /// Told by each issue thread what came of its issue.
    pub(super) issue_done: tokio::sync::mpsc::UnboundedSender<Round>,
    /// The folder's sender lock, held for the daemon's life: issue threads send under it.
    pub(super) held: Arc<SenderLock>,
    pub(super) root: PathBuf,
    pub(super) config: Arc<Config>,
    /// Lent to a blocking thread while it publishes; always back between calls.
    pub(super) store: Option<Store>,
    pub(super) tracker: Tracker,
    /// The last read of each file (see [`super::reading`]).
    pub(super) cache: HashMap<PathBuf, super::reading::Cached>,
    pub(super) written: publish::Written,
    pub(super) entries: Vec<Entry>,
    pub(super) next_post_due: Option<DateTime<Utc>>,
    /// A publish that failed is tried again by itself at this time.
    pub(super) retry: Option<PublishRetry>,
}

/// What one issue thread did: the summary of the issue (none: nothing to send) or why it stopped.
#[derive(Debug, Clone)]
pub(super) struct Round {
    /// With `--retry-failed` asked: the issue and how many failed deliveries were queued again.
    pub(super) retried: Option<(i64, usize)>,
    pub(super) outcome: Result<deliver::Summary, String>,
    /// The issue is held or awaits approval: why (its tick passed; nothing was sent).
    pub(super) gated: Option<String>,
}

/// When a failed publish is tried again, and how long the wait after it will be.
#[derive(Debug, Clone, Copy)]
pub(super) struct PublishRetry {
    pub(super) at: Instant,
    pub(super) wait: Duration,
}

const FIRST_RETRY: Duration = Duration::from_secs(2);
/// At most this random wait before a scheduled issue's first message.
pub(super) const MAX_SPREAD: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Longest wait between tries of an issue that stopped early.
pub(super) const MAX_ISSUE_RETRY: Duration = Duration::from_secs(30 * 60);

/// The first wait before an issue that stopped early is tried again: a minute, or
/// `TAYORI_ISSUE_RETRY_MS` (tests, or an impatient operator).
pub(super) fn first_issue_retry() -> Duration {
    std::env::var("TAYORI_ISSUE_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

impl Daemon {
    pub(super) fn new(
        root: &Path,
        config: Arc<Config>,
        store: Store,
        held: SenderLock,
        issue_done: tokio::sync::mpsc::UnboundedSender<Round>,
    ) -> Daemon {
        Daemon {
            issue_done,
            held: Arc::new(held),
            root: root.to_path_buf(),
            config,
            store: Some(store),
            tracker: Tracker::default(),
            cache: HashMap::new(),
            written: publish::Written::default(),
            entries: Vec::new(),
            next_post_due: None,
            retry: None,
        }
    }

    /// Reads the ready files (keeping the last good version of the others) and publishes, on a
    /// blocking thread: the server keeps answering meanwhile.
    pub(super) async fn reconcile(&mut self) -> anyhow::Result<()> {
        let mut work = Reconcile {
            root: self.root.clone(),
            config: self.config.clone(),
            store: self.store.take().expect("the store is back between calls"),
            tracker: std::mem::take(&mut self.tracker),
            cache: std::mem::take(&mut self.cache),
            written: std::mem::take(&mut self.written),
        };
        // A panic while reading one file is that file's problem (see `reading`); one anywhere
        // else in publishing fails this publish, which is tried again, and the daemon goes on.
        let root = self.root.clone();
        let done = tokio::task::spawn_blocking(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.run()))
                .unwrap_or_else(|p| {
                    Err(anyhow::anyhow!(
                        "publishing panicked: {}",
                        panic_message(&*p)
                    ))
                });
            (work, r)
        })
        .await;
        let (work, result) = match done {
            Ok(done) => done,
            Err(e) => {
                // Only a cancelled runtime gets here; the store is opened again, the caches
                // start afresh.
                self.store = Some(Store::open(&root)?);
                anyhow::bail!("publishing ended: {e}");
            }
        };
        self.store = Some(work.store);
        self.tracker = work.tracker;
        self.cache = work.cache;
        self.written = work.written;
        let report = result?;
        self.next_post_due = report
            .scheduled
            .iter()
            .map(|(_, t)| t.with_timezone(&Utc))
            .min();
        self.entries = report.entries;
        Ok(())
    }

    /// [`Daemon::reconcile`], logging a failure instead of stopping: a full disk, a missing
    /// `posts/` or too few file descriptors now is tried again by itself, with a growing wait.
    pub(super) async fn reconcile_logged(&mut self) {
        match self.reconcile().await {
            Ok(()) => self.retry = None,
            Err(e) => {
                let wait = self
                    .retry
                    .map_or(FIRST_RETRY, |r| (r.wait * 2).min(MAX_RETRY));
                tracing::error!(
                    "publishing failed; nothing was changed, trying again in {}s: {e:#}",
                    wait.as_secs()
                );
                self.retry = Some(PublishRetry {
                    at: Instant::now() + wait,
                    wait,
                });
            }
        }
    }

    /// Runs `f` on the store on a blocking thread.
    pub(super) async fn with_store<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, crate::store::StoreError> {
        let store = self.store.take().expect("the store is back between calls");
        let root = self.root.clone();
        let done = tokio::task::spawn_blocking(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&store)))
                .unwrap_or_else(|p| {
                    Err(crate::store::StoreError::Abandoned(format!(
                        "a store call panicked: {}",
                        panic_message(&*p)
                    )))
                });
            (store, r)
        })
        .await;
        match done {
            Ok((store, r)) => {
                self.store = Some(store);
                r
            }
            Err(e) => {
                self.store = Some(Store::open(&root)?);
                Err(crate::store::StoreError::Abandoned(format!(
                    "a store call ended: {e}"
                )))
            }
        }
    }

    /// At start: a tick missed while we were down is caught up once (the first start only
    /// remembers now), and an unfinished issue is resumed.
    pub(super) async fn catch_up(
        &mut self,
        schedule: &Schedule,
        tz: &chrono_tz::Tz,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
        let now = Utc::now();
        let (last, unfinished) = self
            .with_store(|s| Ok((s.meta("last_tick")?, s.unfinished_issue()?.is_some())))
            .await?;
        let last = match last {
            None => None,
            Some(t) => Some(DateTime::parse_from_rfc3339(&t).map_err(|e| {
                anyhow::anyhow!("state store: the last tick `{t}` is not a time: {e}")
            })?),
        };
        // A tick on a day without an issue (calendar) is not one to catch up.
        let calendar = crate::calendar::Calendar::of(&self.config);
        let missed = last.is_some_and(|last| {
            calendar
                .next_sending_tick(schedule, &last.with_timezone(tz))
                .0
                .is_some_and(|t| t.with_timezone(&Utc) <= now)
        });
        if last.is_none() || missed {
            self.with_store(move |s| s.set_meta("last_tick", &now.to_rfc3339()))
                .await?;
        }
        let today = now.with_timezone(tz).date_naive();
        if let Some(why) = calendar.skipped(today).filter(|_| missed && !unfinished) {
            tracing::info!(last_tick = ?last, "a tick was missed while stopped, but today has no issue ({why}): the pending issue waits for the next tick");
            return Ok(None);
        }
        if missed {
            tracing::info!(last_tick = ?last, "catching up a tick missed while stopped");
            return Ok(Some(self.start_issue(stop, Duration::ZERO, false)));
        }
        if unfinished {
            tracing::info!("resuming the unfinished issue");
            return Ok(Some(self.start_issue(stop, Duration::ZERO, false)));
        }
        Ok(None)
    }

    /// Makes (or resumes) an issue and sends it on a thread of its own, with its own
    /// single-threaded runtime — the same path as `tayori send` — so that issue creation,
    /// list reads and ledger commits never hold up the server. With `retry_failed`, the last
    /// issue's failed deliveries are queued again first (`send --retry-failed` handed over).
    pub(super) fn start_issue(
        &self,
        stop: &CancellationToken,
        spread: Duration,
        retry_failed: bool,
    ) -> std::thread::JoinHandle<()> {
        let (root, config, entries, stop, done, held) = (
            self.root.clone(),
            self.config.clone(),
            self.entries.clone(),
            stop.clone(),
            self.issue_done.clone(),
            self.held.clone(),
        );
        std::thread::spawn(move || {
            let run = || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    // A weekly issue's first messages do not all leave at :00.
                    tokio::select! {
                        _ = tokio::time::sleep(spread) => {}
                        _ = stop.cancelled() => return Ok((None, deliver::Summary::default(), None)),
                    }
                    send_issue(&root, &config, &entries, &held, retry_failed, stop).await
                })
            };
            // A panic is this issue's error: it stays pending and is tried again.
            let sent =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|p| {
                    Err(anyhow::anyhow!("sending panicked: {}", panic_message(&*p)))
                });
            let round = match sent {
                Ok((retried, summary, gated)) => Round {
                    retried,
                    outcome: Ok(summary),
                    gated,
                },
                Err(e) => {
                    tracing::error!("issue not sent; it stays pending: {e:#}");
                    Round {
                        retried: None,
                        outcome: Err(format!("{e:#}")),
                        gated: None,
                    }
                }
            };
            let _ = done.send(round);
        })
    }
}

impl Daemon {
    /// Sends the proof of the pending issue when it is due (see [`crate::editor::proof`]).
    pub(super) async fn check_proof(&mut self) {
        let (root, config) = (self.root.clone(), self.config.clone());
        let checked = self
            .with_store(move |s| {
                let schedule = match config.schedule.value() {
                    Ok(sc) => sc,
                    Err(e) => return Ok(Err(anyhow::anyhow!("schedule: {e}"))),
                };
                if let Err(e) = crate::editor::alert::check_disk(&root, &config, s) {
                    tracing::error!("free space: {e}");
                }
                Ok(crate::editor::proof::check(
                    &root,
                    &config,
                    s,
                    schedule,
                    Utc::now(),
                ))
            })
            .await;
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("proof to the editors: {e:#}"),
            Err(e) => tracing::error!("proof to the editors: {e}"),
        }
    }

    /// After an issue thread: the report of an issue sent, an alert for one that stopped (it
    /// is also POSTed to the webhook: mail may be what failed), its resolution once one goes.
    pub(super) async fn tell_office(&mut self, round: &Round, at_tick: bool) {
        if round.gated.is_some() {
            // A tick passed while held or unapproved: released, the issue goes at once.
            if at_tick {
                if let Err(e) = self.with_store(|s| s.note_tick_passed()).await {
                    tracing::error!("recording the tick that passed: {e}");
                }
            }
            return;
        }
        if !crate::editor::enabled(&self.config) {
            return;
        }
        let (root, config, round) = (self.root.clone(), self.config.clone(), round.clone());
        let told = self
            .with_store(move |s| {
                use crate::editor::{alert, report};
                let r = match &round.outcome {
                    Ok(summary) if summary.issue.is_some() => {
                        let stopped = summary.interrupted.then_some("tayori が停止されました");
                        report::after_issue(&root, &config, s, summary, stopped)
                            .and_then(|()| Ok(alert::clear_now(&root, &config, s, alert::SMTP)?))
                    }
                    Ok(_) => Ok(()),
                    Err(why) => {
                        let text = format!("号の配信が止まりました。未送信の分は残っていて、直れば自動で続きを送ります。原因: {why}");
                        alert::raise_now(&root, &config, s, alert::SMTP, &text, true)
                            .map_err(anyhow::Error::from)
                            .and_then(|()| report::after_stop(&root, &config, s, why))
                    }
                };
                Ok(r)
            })
            .await;
        match told {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("telling the office: {e:#}"),
            Err(e) => tracing::error!("telling the office: {e}"),
        }
    }
}

/// What a reconcile needs, moved to a blocking thread and back.
struct Reconcile {
    root: PathBuf,
    config: Arc<Config>,
    store: Store,
    tracker: Tracker,
    cache: HashMap<PathBuf, super::reading::Cached>,
    /// What the last build wrote to `public/`, so the next rewrites only what changed.
    written: publish::Written,
}

impl Reconcile {
    fn run(&mut self) -> anyhow::Result<publish::Report> {
        let dir = self.root.join("posts");
        let opts = IngestOptions::from_config(&self.config).with_media_cache(&self.root, true);
        // The error names the folder.
        let scan = super::reading::read_posts(&dir, &opts, &mut self.tracker, &mut self.cache)?;
        let report = publish::publish(
            &self.root,
            &self.config,
            &self.store,
            scan,
            Utc::now(),
            &mut self.written,
        )?;
        // The office hears of it; a receipt that cannot be queued is logged, never a failed
        // publish (the posts are out).
        if let Err(e) = crate::editor::receipt::after_publish(
            &self.root,
            &self.config,
            &self.store,
            &report,
            Utc::now(),
        ) {
            tracing::error!("receipt to the editors not queued: {e}");
        }
        Ok(report)
    }
}

/// What a panic carried, as text.
pub(super) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

async fn send_issue(
    root: &Path,
    config: &Config,
    entries: &[Entry],
    held: &SenderLock,
    retry_failed: bool,
    stop: CancellationToken,
) -> anyhow::Result<(Option<(i64, usize)>, deliver::Summary, Option<String>)> {
    let mut store = Store::open(root)?;
    let retried = if retry_failed {
        deliver::requeue_failed(root, &store)?
    } else {
        None
    };
    let issue = match deliver::issue_to_send(root, config, &mut store, entries, held) {
        Ok(Some(issue)) => issue,
        Ok(None) => {
            tracing::info!("nothing published since the last issue");
            return Ok((retried, deliver::Summary::default(), None));
        }
        // Held or unapproved: nothing goes (the loop notes a tick that passed so).
        Err(deliver::DeliverError::Gated(why)) => {
            tracing::info!("not sent: {why}");
            return Ok((retried, deliver::Summary::default(), Some(why)));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(issue = issue.id, subject = %issue.subject, "issue");
    let s = deliver::deliver_issue(
        root,
        config,
        store,
        held,
        &issue,
        deliver::Retry::default(),
        false,
        stop,
    )
    .await?;
    tracing::info!(issue = issue.id, sent = s.sent, failed = s.failed, deferred = s.deferred, to = %s.destination, "issue sent");
    Ok((retried, s, None))
}
