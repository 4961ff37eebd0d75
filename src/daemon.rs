//! `tayori run`: watch `posts/`, publish, send an issue at each schedule tick, deliver the
//! webhook outbox and serve HTTP — one process, one shutdown token.
//!
//! Everything durable is in the store, so the loop itself keeps only caches: on start it
//! reconciles the folder with the store, resumes an unfinished issue, catches up a tick missed
//! while it was down, and picks the webhook outbox up where it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::content::{self, IngestOptions, Post};
use crate::deliver::{self, Retry};
use crate::publish::{self, display, Scan};
use crate::render::Entry;
use crate::schedule::{self, Schedule};
use crate::store::Store;
use crate::watch::{self, Tracker};

/// Runs until `stop` fires; returns after in-flight work is finished and persisted.
pub async fn run(
    root: PathBuf,
    config: Config,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let schedule = schedule::parse(&config.schedule).map_err(anyhow::Error::msg)?;
    let tz = config.tz();
    let store = Store::open(&root)?;
    let key = crate::unsubscribe::Key::load_or_create(&root)?;
    tracing::info!(listen = %listener.local_addr()?, "serving feeds, archive and unsubscribe");
    let server = tokio::spawn(crate::server::serve(
        listener,
        crate::server::AppState {
            root: root.clone(),
            config: config.clone(),
            key,
        },
        stop.clone(),
    ));
    let webhook_wake = Arc::new(Notify::new());
    let webhooks = tokio::spawn(webhook_loop(
        root.clone(),
        config.clone(),
        webhook_wake.clone(),
        stop.clone(),
    ));

    let posts_dir = root.join("posts");
    std::fs::create_dir_all(&posts_dir)?;
    let (_watcher, mut events) = watch::watch(&posts_dir)?;
    let mut d = Daemon {
        root: root.clone(),
        config: config.clone(),
        store,
        tracker: Tracker::default(),
        cache: HashMap::new(),
        rejected: HashMap::new(),
        entries: Vec::new(),
        next_post_due: None,
    };
    d.reconcile()?;
    webhook_wake.notify_one();

    // A tick missed while we were down is caught up once; the first start only remembers now.
    let now = Utc::now();
    let mut sending: Option<JoinHandle<()>> = None;
    match d
        .store
        .meta("last_tick")?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
    {
        Some(last) => {
            if schedule
                .next_after(&last.with_timezone(&tz))
                .is_some_and(|t| t.with_timezone(&Utc) <= now)
            {
                tracing::info!(last_tick = %last, "catching up a tick missed while stopped");
                d.store.set_meta("last_tick", &now.to_rfc3339())?;
                sending = d.start_issue(&stop);
            }
        }
        None => d.store.set_meta("last_tick", &now.to_rfc3339())?,
    }
    if sending.is_none() && d.store.unfinished_issue()?.is_some() {
        tracing::info!("resuming the unfinished issue");
        sending = d.start_issue(&stop);
    }
    let mut next_tick = next_tick(&schedule, &tz, Utc::now());
    if let Some(t) = next_tick {
        tracing::info!(next_tick = %t.with_timezone(&tz).to_rfc3339(), "schedule {}", config.schedule);
    }

    let mut check_at: Option<Instant> = None;
    loop {
        let wake_post = d
            .next_post_due
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default());
        let wake_tick = next_tick.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
        tokio::select! {
            _ = stop.cancelled() => break,
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                if d.tracker.observe(&ev) {
                    let soon = Instant::now() + watch::QUIET;
                    check_at = Some(check_at.map_or(soon, |at| at.min(soon)));
                }
            }
            _ = sleep_until(check_at) => {
                d.reconcile_logged();
                webhook_wake.notify_one();
                check_at = d.tracker.next_check();
            }
            _ = sleep_opt(wake_post) => {
                d.reconcile_logged();
                webhook_wake.notify_one();
            }
            _ = sleep_opt(wake_tick) => {
                let tick = next_tick.take().unwrap_or_else(Utc::now);
                if let Err(e) = d.store.set_meta("last_tick", &tick.to_rfc3339()) {
                    tracing::error!("recording the tick: {e}");
                }
                next_tick = next_tick_after(&schedule, &tz, tick);
                d.reconcile_logged();
                if sending.as_ref().is_some_and(|h| !h.is_finished()) {
                    tracing::info!("tick while an issue is still being sent; the next tick picks up");
                } else {
                    sending = d.start_issue(&stop);
                }
            }
        }
    }
    tracing::info!("stopping: finishing in-flight sends and webhook attempts");
    if let Some(h) = sending {
        let _ = h.await;
    }
    let _ = webhooks.await;
    server.await??;
    tracing::info!("stopped");
    Ok(())
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

fn next_tick_after(
    schedule: &Schedule,
    tz: &chrono_tz::Tz,
    tick: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    next_tick(schedule, tz, tick.max(Utc::now()))
}

struct Daemon {
    root: PathBuf,
    config: Arc<Config>,
    store: Store,
    tracker: Tracker,
    /// The last good parse of each file, used while the file is being written or is invalid.
    cache: HashMap<PathBuf, Post>,
    /// Files already reported as invalid, by content hash, so each is logged once.
    rejected: HashMap<PathBuf, String>,
    entries: Vec<Entry>,
    next_post_due: Option<DateTime<Utc>>,
}

impl Daemon {
    /// Reads the ready files (keeping the last good version of the others), publishes.
    fn reconcile(&mut self) -> anyhow::Result<()> {
        let dir = self.root.join("posts");
        let opts = IngestOptions::from_config(&self.config);
        let mut scan = Scan::default();
        let files = content::list_post_files(&dir);
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
        let report = publish::publish(&self.root, &self.config, &self.store, scan, Utc::now())?;
        self.next_post_due = report
            .scheduled
            .iter()
            .map(|(_, t)| t.with_timezone(&Utc))
            .min();
        self.entries = report.entries;
        Ok(())
    }

    /// [`Daemon::reconcile`], logging a failure instead of stopping: a busy or full disk now
    /// is retried at the next event or timer.
    fn reconcile_logged(&mut self) {
        if let Err(e) = self.reconcile() {
            tracing::error!("publishing failed (will retry): {e:#}");
        }
    }

    /// Makes (or resumes) an issue and sends it in the background.
    fn start_issue(&mut self, stop: &CancellationToken) -> Option<JoinHandle<()>> {
        let (root, config, entries, stop) = (
            self.root.clone(),
            self.config.clone(),
            self.entries.clone(),
            stop.clone(),
        );
        Some(tokio::spawn(async move {
            if let Err(e) = send_issue(&root, &config, &entries, stop).await {
                tracing::error!("issue not sent: {e:#}");
            }
        }))
    }
}

async fn send_issue(
    root: &Path,
    config: &Config,
    entries: &[Entry],
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut store = Store::open(root)?;
    let issue = match store.unfinished_issue()? {
        Some(i) => i,
        None => match deliver::make_issue(root, config, &mut store, entries)? {
            Some(i) => i,
            None => {
                tracing::info!("tick: nothing published since the last issue");
                return Ok(());
            }
        },
    };
    tracing::info!(issue = issue.id, subject = %issue.subject, "issue");
    let s =
        deliver::deliver_issue(root, config, store, &issue, Retry::default(), false, stop).await?;
    tracing::info!(issue = issue.id, sent = s.sent, failed = s.failed, deferred = s.deferred, to = %s.destination, "issue sent");
    Ok(())
}

/// Delivers due webhook events until `stop`; wakes when events are queued or come due.
async fn webhook_loop(
    root: PathBuf,
    config: Arc<Config>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    if config.webhook.is_none() {
        return;
    }
    let http = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook client: {e}");
            return;
        }
    };
    let mut store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("webhook outbox: {e}");
            return;
        }
    };
    loop {
        if let Err(e) = crate::crosspost::deliver_due(&config, &mut store, &http).await {
            tracing::error!("webhook outbox: {e}");
        }
        let next = store.next_webhook_due().ok().flatten().map(|t| {
            (t.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or_default()
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = sleep_opt(next.or(Some(std::time::Duration::from_secs(3600)))) => {}
        }
    }
}
