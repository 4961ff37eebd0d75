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
use crate::content::IngestOptions;
use crate::deliver;
use crate::publish;
use crate::render::Entry;
use crate::schedule::Schedule;
use crate::store::Store;
use crate::watch::Tracker;

pub(super) struct Daemon {
    /// Told by each issue thread whether its issue got out.
    pub(super) issue_done: tokio::sync::mpsc::UnboundedSender<bool>,
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
    pub(super) retry: Option<Retry>,
}

/// When a failed publish is tried again, and how long the wait after it will be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
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
        issue_done: tokio::sync::mpsc::UnboundedSender<bool>,
    ) -> Daemon {
        Daemon {
            issue_done,
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
        let (work, result) = tokio::task::spawn_blocking(move || {
            let r = work.run();
            (work, r)
        })
        .await
        .expect("publishing does not panic");
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
                self.retry = Some(Retry {
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
        let (store, r) = tokio::task::spawn_blocking(move || {
            let r = f(&store);
            (store, r)
        })
        .await
        .expect("a store call does not panic");
        self.store = Some(store);
        r
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
            return Ok(Some(self.start_issue(stop, Duration::ZERO)));
        }
        if unfinished {
            tracing::info!("resuming the unfinished issue");
            return Ok(Some(self.start_issue(stop, Duration::ZERO)));
        }
        Ok(None)
    }

    /// Makes (or resumes) an issue and sends it on a thread of its own, with its own
    /// single-threaded runtime — the same path as `tayori send` — so that issue creation,
    /// list reads and ledger commits never hold up the server.
    pub(super) fn start_issue(
        &self,
        stop: &CancellationToken,
        spread: Duration,
    ) -> std::thread::JoinHandle<()> {
        let (root, config, entries, stop, done) = (
            self.root.clone(),
            self.config.clone(),
            self.entries.clone(),
            stop.clone(),
            self.issue_done.clone(),
        );
        std::thread::spawn(move || {
            let sent = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async {
                        // A weekly issue's first messages do not all leave at :00.
                        tokio::select! {
                            _ = tokio::time::sleep(spread) => {}
                            _ = stop.cancelled() => return Ok(()),
                        }
                        send_issue(&root, &config, &entries, stop).await
                    })
                });
            if let Err(e) = &sent {
                tracing::error!("issue not sent; it stays pending: {e:#}");
            }
            let _ = done.send(sent.is_ok());
        })
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
        let opts = IngestOptions::from_config(&self.config);
        // The error names the folder.
        let scan = super::reading::read_posts(&dir, &opts, &mut self.tracker, &mut self.cache)?;
        Ok(publish::publish(
            &self.root,
            &self.config,
            &self.store,
            scan,
            Utc::now(),
            &mut self.written,
        )?)
    }
}

async fn send_issue(
    root: &Path,
    config: &Config,
    entries: &[Entry],
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut store = Store::open(root)?;
    let Some(issue) = deliver::issue_to_send(root, config, &mut store, entries)? else {
        tracing::info!("tick: nothing published since the last issue");
        return Ok(());
    };
    tracing::info!(issue = issue.id, subject = %issue.subject, "issue");
    let s = deliver::deliver_issue(
        root,
        config,
        store,
        &issue,
        deliver::Retry::default(),
        false,
        stop,
    )
    .await?;
    tracing::info!(issue = issue.id, sent = s.sent, failed = s.failed, deferred = s.deferred, to = %s.destination, "issue sent");
    Ok(())
}
