//! `tayori run`: watch `posts/`, publish, send an issue at each schedule tick, deliver the
//! webhook outbox and serve HTTP — one process, one shutdown token.
//!
//! Everything durable is in the store, so the loop itself keeps only caches: on start it
//! reconciles the folder with the store, resumes an unfinished issue, catches up a tick missed
//! while it was down, and picks the webhook outbox up where it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::content::{self, IngestOptions, Post};
use crate::deliver;
use crate::files::display;
use crate::publish::{self, Scan};
use crate::render::Entry;
use crate::schedule::{self, Schedule};
use crate::store::Store;
use crate::watch::{self, Tracker};

/// Runs until `stop` fires; returns after in-flight work is finished and persisted.
///
/// `/healthz` (and the rest of the server) answers only once `posts/` is watched and has been
/// reconciled with the store: a file dropped after that is a new post, even on a first start.
pub async fn run(
    root: PathBuf,
    config: Config,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if config.smtp.is_some() {
        if let Some(w) = crate::config::unreachable_public_url(&config) {
            tracing::warn!("{w}");
        }
    }
    let config = Arc::new(config);
    let schedule = schedule::parse(&config.schedule)?;
    let tz = config.tz();
    let r = root.clone();
    let (store, key) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((
            Store::open(&r)?,
            crate::unsubscribe::Key::load_or_create(&r)?,
        ))
    })
    .await??;
    let posts_dir = root.join("posts");
    std::fs::create_dir_all(&posts_dir)
        .with_context(|| format!("creating {}", display(&posts_dir).display()))?;
    let (watcher, events) = watch::watch(&posts_dir)
        .with_context(|| format!("watching {}", display(&posts_dir).display()))?;
    let (issue_tx, issue_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut d = Daemon::new(&root, config.clone(), store, issue_tx);
    d.reconcile().await?;

    // Only now that posts/ is read and watched does the server (and /healthz) answer.
    tracing::info!(listen = %listener.local_addr()?, "serving feeds, archive and unsubscribe");
    let state = crate::server::AppState::new(&root, config.clone(), key);
    let server = tokio::spawn(crate::server::serve(listener, state, stop.clone()));
    let webhook_wake = Arc::new(Notify::new());
    let outbox =
        crate::crosspost::run_outbox(root, config.clone(), webhook_wake.clone(), stop.clone());
    let webhooks = tokio::spawn(outbox);
    webhook_wake.notify_one();

    let sending = d.catch_up(&schedule, &tz, &stop).await?;
    let mut lp = Loop {
        next_tick: next_tick(&schedule, &tz, Utc::now()),
        schedule,
        tz,
        sending,
        issue_done: issue_rx,
        issue_retry_at: None,
        issue_retry_wait: None,
        bounces_at: config
            .bounces
            .as_ref()
            .and_then(|b| b.poll_every())
            .map(|_| Instant::now()),
        watched: folder_id(&posts_dir),
        watcher: Some(watcher),
        events,
        check_at: None,
        webhook_wake,
    };
    if let Some(t) = lp.next_tick {
        tracing::info!(next_tick = %t.with_timezone(&tz).to_rfc3339(), "schedule {}", config.schedule);
    }
    lp.run(&mut d, &stop).await;

    tracing::info!("stopping: finishing in-flight sends and webhook attempts");
    if let Some(h) = lp.sending {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    let _ = webhooks.await;
    server.await??;
    tracing::info!("stopped");
    Ok(())
}

/// The daemon's event loop and what it waits on.
struct Loop {
    schedule: Schedule,
    tz: chrono_tz::Tz,
    next_tick: Option<DateTime<Utc>>,
    /// The issue being sent, on its own thread.
    sending: Option<std::thread::JoinHandle<()>>,
    /// Whether each issue thread got its issue out (or had nothing to send).
    issue_done: tokio::sync::mpsc::UnboundedReceiver<bool>,
    /// An issue stopped early (server down, lists unreadable) is tried again by itself at this
    /// time, instead of waiting for the next tick — which may be a week away.
    issue_retry_at: Option<Instant>,
    /// The last wait before such a try; it doubles while the issue keeps stopping.
    issue_retry_wait: Option<Duration>,
    /// When the bounce mailbox is read next (`bounces.poll`).
    bounces_at: Option<Instant>,
    /// `None` while `posts/` is gone: it is watched again once it is back.
    watcher: Option<notify::RecommendedWatcher>,
    /// The folder watched (device, inode): a `posts/` made anew needs a new watch.
    watched: Option<(u64, u64)>,
    events: tokio::sync::mpsc::UnboundedReceiver<notify::Event>,
    check_at: Option<Instant>,
    webhook_wake: Arc<Notify>,
}

impl Loop {
    async fn run(&mut self, d: &mut Daemon, stop: &CancellationToken) {
        loop {
            let wake_post = d
                .next_post_due
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            let wake_tick = self
                .next_tick
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = self.events.recv(), if self.watcher.is_some() => {
                    let Some(ev) = ev else { break };
                    if d.tracker.observe(&ev) {
                        let soon = Instant::now() + watch::QUIET;
                        self.check_at = Some(self.check_at.map_or(soon, |at| at.min(soon)));
                    }
                }
                _ = sleep_until(self.check_at) => {
                    self.publish(d).await;
                    self.check_at = d.tracker.next_check();
                }
                _ = sleep_opt(wake_post) => self.publish(d).await,
                _ = sleep_until(d.retry.map(|r| r.at)) => self.publish(d).await,
                _ = sleep_opt(wake_tick) => self.tick(d, stop).await,
                Some(ok) = self.issue_done.recv() => self.issue_finished(ok),
                _ = sleep_until(self.bounces_at) => self.read_bounces(d).await,
                _ = sleep_until(self.issue_retry_at) => {
                    self.issue_retry_at = None;
                    if self.sending.as_ref().is_none_or(|h| h.is_finished()) {
                        tracing::info!("trying the pending issue again");
                        self.sending = Some(d.start_issue(stop, Duration::ZERO));
                    }
                }
            }
        }
    }

    /// Reads the bounce mailbox on a blocking thread, then waits `bounces.poll`.
    async fn read_bounces(&mut self, d: &mut Daemon) {
        let every = d.config.bounces.as_ref().and_then(|b| b.poll_every());
        self.bounces_at = every.map(|e| Instant::now() + e);
        let (root, config) = (d.root.clone(), d.config.clone());
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut store = Store::open(&root)?;
            deliver::read_bounces(&root, &config, &mut store);
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = read {
            tracing::warn!("bounce reports not read: {e:#}");
        }
    }

    /// After an issue thread: schedules a retry when the issue did not get out.
    fn issue_finished(&mut self, ok: bool) {
        if ok {
            self.issue_retry_wait = None;
            return;
        }
        let wait = self
            .issue_retry_wait
            .map_or_else(first_issue_retry, |w| (w * 2).min(MAX_ISSUE_RETRY));
        tracing::info!("the pending issue is tried again in {}s", wait.as_secs());
        self.issue_retry_wait = Some(wait);
        self.issue_retry_at = Some(Instant::now() + wait);
    }

    async fn publish(&mut self, d: &mut Daemon) {
        d.reconcile_logged().await;
        if folder_id(&d.root.join("posts")) != self.watched {
            self.rewatch(d);
        }
        self.webhook_wake.notify_one();
    }

    /// Before a retry: `posts/` may have gone away and come back (unmounted, a sync client),
    /// and a watch on the old folder sees nothing, so it is watched anew.
    fn rewatch(&mut self, d: &Daemon) {
        let dir = d.root.join("posts");
        self.watcher = None;
        self.watched = None;
        let shown = display(&dir);
        match watch::watch(&dir) {
            Ok((w, events)) => {
                self.watched = folder_id(&dir);
                tracing::info!(folder = %shown.display(), "watching again");
                self.watcher = Some(w);
                self.events = events;
            }
            Err(e) => tracing::warn!(folder = %shown.display(), "cannot watch yet: {e}"),
        }
    }

    async fn tick(&mut self, d: &mut Daemon, stop: &CancellationToken) {
        let tick = self.next_tick.take().unwrap_or_else(Utc::now);
        self.next_tick = next_tick(&self.schedule, &self.tz, tick.max(Utc::now()));
        d.reconcile_logged().await;
        let recorded = d
            .with_store(move |s| s.set_meta("last_tick", &tick.to_rfc3339()))
            .await;
        if let Err(e) = recorded {
            tracing::error!("recording the tick: {e}");
        }
        if self.sending.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::info!("tick while an issue is still being sent; the next tick picks up");
        } else {
            // Spread only real schedules (ticks an hour or more apart), not test ones.
            let hourly = self
                .next_tick
                .is_some_and(|n| n - tick >= chrono::TimeDelta::hours(1));
            let spread = if hourly {
                Duration::from_millis(fastrand::u64(0..=MAX_SPREAD.as_millis() as u64))
            } else {
                Duration::ZERO
            };
            self.sending = Some(d.start_issue(stop, spread));
        }
    }
}

/// What identifies a folder on disk (device and inode), when it is there.
fn folder_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn next_tick(schedule: &Schedule, tz: &chrono_tz::Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .next_after(&now.with_timezone(tz))
        .map(|t| t.with_timezone(&Utc))
}

struct Daemon {
    /// Told by each issue thread whether its issue got out.
    issue_done: tokio::sync::mpsc::UnboundedSender<bool>,
    root: PathBuf,
    config: Arc<Config>,
    /// Lent to a blocking thread while it publishes; always back between calls.
    store: Option<Store>,
    tracker: Tracker,
    /// The last good parse of each file, used while the file is being written or is invalid.
    cache: HashMap<PathBuf, Post>,
    /// Files already reported as invalid, by content hash, so each is logged once.
    rejected: HashMap<PathBuf, String>,
    entries: Vec<Entry>,
    next_post_due: Option<DateTime<Utc>>,
    /// A publish that failed is tried again by itself at this time.
    retry: Option<Retry>,
}

/// When a failed publish is tried again, and how long the wait after it will be.
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    wait: Duration,
}

const FIRST_RETRY: Duration = Duration::from_secs(2);
/// At most this random wait before a scheduled issue's first message.
const MAX_SPREAD: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Longest wait between tries of an issue that stopped early.
const MAX_ISSUE_RETRY: Duration = Duration::from_secs(30 * 60);

/// The first wait before an issue that stopped early is tried again: a minute, or
/// `TAYORI_ISSUE_RETRY_MS` (tests, or an impatient operator).
fn first_issue_retry() -> Duration {
    std::env::var("TAYORI_ISSUE_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

impl Daemon {
    fn new(
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
            rejected: HashMap::new(),
            entries: Vec::new(),
            next_post_due: None,
            retry: None,
        }
    }

    /// Reads the ready files (keeping the last good version of the others) and publishes, on a
    /// blocking thread: the server keeps answering meanwhile.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let mut work = Reconcile {
            root: self.root.clone(),
            config: self.config.clone(),
            store: self.store.take().expect("the store is back between calls"),
            tracker: std::mem::take(&mut self.tracker),
            cache: std::mem::take(&mut self.cache),
            rejected: std::mem::take(&mut self.rejected),
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
        self.rejected = work.rejected;
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
    async fn reconcile_logged(&mut self) {
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
    async fn with_store<T: Send + 'static>(
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
    async fn catch_up(
        &mut self,
        schedule: &Schedule,
        tz: &chrono_tz::Tz,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
        let now = Utc::now();
        let (last, unfinished) = self
            .with_store(|s| Ok((s.meta("last_tick")?, s.unfinished_issue()?.is_some())))
            .await?;
        let last = last.and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
        let missed = last.is_some_and(|last| {
            schedule
                .next_after(&last.with_timezone(tz))
                .is_some_and(|t| t.with_timezone(&Utc) <= now)
        });
        if last.is_none() || missed {
            self.with_store(move |s| s.set_meta("last_tick", &now.to_rfc3339()))
                .await?;
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
    fn start_issue(
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
    cache: HashMap<PathBuf, Post>,
    rejected: HashMap<PathBuf, String>,
}

impl Reconcile {
    fn run(&mut self) -> anyhow::Result<publish::Report> {
        let dir = self.root.join("posts");
        let opts = IngestOptions::from_config(&self.config);
        let mut scan = Scan::default();
        let files = content::list_post_files(&dir)?; // the error names the folder
        self.cache.retain(|p, _| files.contains(p));
        self.tracker.keep_only(&files);
        for path in files {
            if !self.tracker.ready(&path) {
                scan.posts.extend(self.cache.get(&path).cloned());
                continue;
            }
            self.tracker.taken(&path);
            match content::ingest(&path, &dir, &opts) {
                Ok(post) => {
                    self.rejected.remove(&path);
                    self.cache.insert(path, post.clone());
                    scan.posts.push(post);
                }
                Err(e) => {
                    let problem = e.problem(&display(&path));
                    let fingerprint = problem.to_string();
                    if self.rejected.get(&path) != Some(&fingerprint) {
                        tracing::warn!(file = %problem.path.display(), reason = %e, "rejected file");
                        self.rejected.insert(path.clone(), fingerprint);
                    }
                    scan.posts.extend(self.cache.get(&path).cloned());
                    scan.problems.push(problem);
                }
            }
        }
        scan.dedupe_slugs();
        Ok(publish::publish(
            &self.root,
            &self.config,
            &self.store,
            scan,
            Utc::now(),
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
