//! `tayori run`: watch `posts/`, publish, send an issue at each schedule tick, deliver the
//! cross-post queue and serve HTTP — one process, one shutdown token.
//!
//! Everything durable is in the store, so the loop itself keeps only caches: on start it
//! reconciles the folder with the store, resumes an unfinished issue, catches up a tick missed
//! while it was down, and picks the cross-post queue up where it was.
//!
//! The daemon holds the folder's sender lock ([`crate::lock`]) for its whole life and is the
//! only process that sends while it runs: a `tayori send` typed meanwhile becomes a request
//! ([`requests`]) that the loop takes within a second and answers with what came of it.
//! SIGHUP reloads `tayori.yaml` (see [`Loop::reload`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::Schedule;
use crate::deliver;
use crate::files::display;
use crate::lock::SenderLock;
use crate::store::{Request, Store};
use crate::watch;

mod reading;
mod reload;
pub mod requests;
mod tasks;
use requests::Asked;
use tasks::{first_issue_retry, Daemon, Round, MAX_ISSUE_RETRY, MAX_SPREAD};

/// Runs until `stop` fires; returns after in-flight work is finished and persisted.
///
/// `/healthz` (and the rest of the server) answers only once `posts/` is watched and has been
/// reconciled with the store: a file dropped after that is a new post, even on a first start.
/// `held` is the folder's sender lock; `hangup` delivers SIGHUP (reload `tayori.yaml`).
pub async fn run(
    root: PathBuf,
    config: Config,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
    held: SenderLock,
    hangup: tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    if config.smtp.is_some() {
        if let Some(w) = crate::config::unreachable_public_url(&config) {
            tracing::warn!("{w}");
        }
    }
    let config = Arc::new(config);
    let schedule = config
        .schedule
        .value()
        .map_err(|e| anyhow::anyhow!("schedule: {e}"))?
        .clone();
    let tz = config.tz();
    let r = root.clone();
    let (store, key) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = Store::open(&r)?;
        Ok((store, crate::unsubscribe::Key::load_or_create(&r)?))
    })
    .await??;
    let posts_dir = root.join("posts");
    std::fs::create_dir_all(&posts_dir)
        .with_context(|| format!("creating {}", display(&posts_dir).display()))?;
    let (watcher, events) = watch::watch(&posts_dir)
        .with_context(|| format!("watching {}", display(&posts_dir).display()))?;
    let (issue_tx, issue_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut d = Daemon::new(&root, config.clone(), store, held, issue_tx);
    d.reconcile().await?;

    // Only now that posts/ is read and watched does the server (and /healthz) answer.
    let services = Services::start(&root, &config, key, listener, &stop)?;
    let webhook_wake = services.webhook_wake.clone();

    let (changed, mailbox_changed) = tokio::sync::mpsc::unbounded_channel();
    start_bounce_watch(&config, changed, &stop);
    let (inbox_tx, inbox_changed) = tokio::sync::mpsc::unbounded_channel();
    let inbox = start_inbox(&config, inbox_tx, &stop);
    let sending = d.catch_up(&schedule, &tz, &stop).await?;
    let (request_tx, requests) = tokio::sync::mpsc::unbounded_channel();
    let request_thread = requests::watch(root.clone(), request_tx, stop.clone())
        .context("starting the thread that reads requests")?;
    let mut lp = Loop {
        running: sending.is_some(),
        requests,
        asked: Vec::new(),
        serving: Vec::new(),
        hangup,
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
        mailbox_changed,
        inbox_at: inbox.as_ref().map(|_| Instant::now()),
        inbox,
        inbox_changed,
        proof_at: crate::editor::enabled(&config).then(Instant::now),
        at_tick: false,
    };
    if let Some(t) = lp.next_tick {
        tracing::info!(next_tick = %t.with_timezone(&tz).to_rfc3339(), "schedule {}", config.schedule.text());
    }
    lp.run(&mut d, &stop).await;

    tracing::info!("stopping: finishing in-flight sends and webhook attempts");
    lp.finish(&mut d).await;
    let _ = tokio::task::spawn_blocking(move || request_thread.join()).await;
    let _ = services.crossposts.await;
    let _ = services.told.await;
    let _ = services.office.await;
    services.server.await??;
    tracing::info!("stopped");
    Ok(())
}

/// The tasks beside the loop, each stopping at the one shutdown token: the HTTP server, the
/// cross-post queues (woken by `webhook_wake`) and the office's mail.
struct Services {
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    crossposts: tokio::task::JoinHandle<()>,
    /// What the cross-post queues told, passed on to the office (ends after the queues).
    told: tokio::task::JoinHandle<()>,
    office: tokio::task::JoinHandle<()>,
    webhook_wake: Arc<Notify>,
}

impl Services {
    fn start(
        root: &Path,
        config: &Arc<Config>,
        key: crate::unsubscribe::Key,
        listener: tokio::net::TcpListener,
        stop: &CancellationToken,
    ) -> anyhow::Result<Services> {
        tracing::info!(listen = %listener.local_addr()?, "serving feeds, archive and unsubscribe");
        let state = crate::server::AppState::new(root, config.clone(), key);
        let server = tokio::spawn(crate::server::serve(listener, state, stop.clone()));
        let webhook_wake = Arc::new(Notify::new());
        let (told, heard) = tokio::sync::mpsc::unbounded_channel();
        let queues = crate::crosspost::run_queues(
            root.to_path_buf(),
            config.clone(),
            webhook_wake.clone(),
            told,
            stop.clone(),
        );
        let crossposts = tokio::spawn(queues);
        let told = tokio::spawn(tell_the_office(root.to_path_buf(), config.clone(), heard));
        webhook_wake.notify_one();
        let office = tokio::spawn(crate::editor::mail::run(
            root.to_path_buf(),
            config.clone(),
            stop.clone(),
        ));
        Ok(Services {
            server,
            crossposts,
            told,
            office,
            webhook_wake,
        })
    }
}

/// Alerts the office when a cross-post target stops, and says when it delivers again; ends
/// with the queues (when every sender is dropped).
async fn tell_the_office(
    root: PathBuf,
    config: Arc<Config>,
    mut heard: tokio::sync::mpsc::UnboundedReceiver<(&'static str, Option<String>)>,
) {
    let mut store = None;
    while let Some((name, stopped)) = heard.recv().await {
        if store.is_none() {
            match crate::store::Shared::open(&root).await {
                Ok(s) => store = Some(s),
                Err(e) => {
                    tracing::error!("{name}: the office could not be told: {e}");
                    continue;
                }
            }
        }
        if let Some(s) = &store {
            crate::editor::alert::crosspost(&root, &config, s, name, stopped.as_deref()).await;
        }
    }
}

/// With `bounces.mailbox`: an IDLE on an IMAP mailbox, or a watch of a Maildir's `new/`,
/// telling the loop when reports arrive.
fn start_bounce_watch(
    config: &Config,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
    stop: &CancellationToken,
) {
    let Some(b) = &config.bounces else {
        return;
    };
    if let (Some(Ok(url)), Some(every)) = (b.mailbox_url(), b.poll_every()) {
        tokio::spawn(crate::mailbox::watch(
            url,
            crate::mailbox::bounces::PASSWORD,
            "bounce mailbox",
            every,
            changed,
            stop.clone(),
        ));
    }
}

/// With `editor.inbox`: the resolver its verdicts use, built once, and an IDLE on an IMAP
/// inbox. `None` (and said) when the inbox cannot be read at all.
fn start_inbox(
    config: &Config,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
    stop: &CancellationToken,
) -> Option<Arc<crate::editor::inbox::auth::Resolver>> {
    use crate::editor::inbox;
    let url = match inbox::url(config)? {
        Ok(url) => url,
        Err(e) => {
            tracing::error!("{e}: the inbox is not read");
            return None;
        }
    };
    let resolver = match inbox::auth::Resolver::from_env() {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(
                "editor inbox: no DNS resolver ({e:#}): the inbox is not read, its messages wait"
            );
            return None;
        }
    };
    let every = config.editor.as_ref().map(|e| e.poll_every())?;
    tokio::spawn(crate::mailbox::watch(
        url,
        inbox::PASSWORD,
        "editor inbox",
        every,
        changed,
        stop.clone(),
    ));
    Some(resolver)
}

/// The daemon's event loop and what it waits on.
struct Loop {
    schedule: Schedule,
    tz: chrono_tz::Tz,
    next_tick: Option<DateTime<Utc>>,
    /// The issue being sent, on its own thread.
    sending: Option<std::thread::JoinHandle<()>>,
    /// From an issue thread's start until its [`Round`] is taken from `issue_done`.
    running: bool,
    /// What each issue thread did.
    issue_done: tokio::sync::mpsc::UnboundedReceiver<Round>,
    /// Requests taken from the store (see [`requests::watch`]).
    requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
    /// `send` requests for the next round (one is running).
    asked: Vec<Asked>,
    /// `send` requests the running round answers.
    serving: Vec<Asked>,
    /// SIGHUP: reload `tayori.yaml`.
    hangup: tokio::signal::unix::Signal,
    /// An issue stopped early (server down, lists unreadable) is tried again by itself at this
    /// time, instead of waiting for the next tick — which may be a week away.
    issue_retry_at: Option<Instant>,
    /// The last wait before such a try; it doubles while the issue keeps stopping.
    issue_retry_wait: Option<Duration>,
    /// When the bounce mailbox is read next (`bounces.poll`).
    bounces_at: Option<Instant>,
    /// An IMAP mailbox that offers IDLE says when new reports arrive (see [`crate::mailbox::watch`]).
    mailbox_changed: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// When the editors' inbox is read next (`editor.poll`).
    inbox_at: Option<Instant>,
    /// The resolver of the inbox's verdicts (`None`: no inbox).
    inbox: Option<Arc<crate::editor::inbox::auth::Resolver>>,
    /// An IMAP inbox that offers IDLE says when mail arrives.
    inbox_changed: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// `None` while `posts/` is gone: it is watched again once it is back.
    watcher: Option<notify::RecommendedWatcher>,
    /// The folder watched (device, inode): a `posts/` made anew needs a new watch.
    watched: Option<(u64, u64)>,
    events: tokio::sync::mpsc::UnboundedReceiver<notify::Event>,
    check_at: Option<Instant>,
    webhook_wake: Arc<Notify>,
    /// When the proof of the pending issue is looked at next (with `editor:` only).
    proof_at: Option<Instant>,
    /// The running round was started by a schedule tick (not a `send` or a retry).
    at_tick: bool,
}

impl Loop {
    /// After the loop: the issue in flight finished and persisted, every round answered.
    async fn finish(&mut self, d: &mut Daemon) {
        if let Some(h) = self.sending.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        while let Ok(round) = self.issue_done.try_recv() {
            self.answer(d, &round).await;
        }
        self.answer_stopped(d).await;
    }

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
                    if d.tracker.observe(&ev, Instant::now()) {
                        // A folder event (no file tracked) is looked at after the quiet time.
                        let soon = d
                            .tracker
                            .next_check()
                            .unwrap_or_else(|| Instant::now() + watch::QUIET);
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
                Some(round) = self.issue_done.recv() => self.issue_finished(d, stop, round).await,
                Some(request) = self.requests.recv() => self.requested(d, stop, request).await,
                Some(()) = self.hangup.recv() => self.reload(d).await,
                _ = sleep_until(self.bounces_at) => self.read_bounces(d).await,
                Some(()) = self.mailbox_changed.recv() => self.read_bounces(d).await,
                _ = sleep_until(self.inbox_at) => self.read_inbox(d).await,
                Some(()) = self.inbox_changed.recv() => self.read_inbox(d).await,
                _ = sleep_until(self.proof_at) => {
                    self.proof_at = Some(Instant::now() + PROOF_CHECK);
                    d.check_proof().await;
                }
                _ = sleep_until(self.issue_retry_at) => {
                    self.issue_retry_at = None;
                    if !self.running {
                        tracing::info!("trying the pending issue again");
                        self.start(d, stop, Duration::ZERO);
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
        // Off the loop's thread: the store and a Maildir are blocking; IMAP and POP3 run on the
        // runtime through the handle.
        let rt = tokio::runtime::Handle::current();
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut store = Store::open(&root)?;
            if let Some(read) = rt.block_on(deliver::read_bounces(&root, &config, &mut store)) {
                // Unreadable for an hour: the office is told (and when it reads again).
                crate::editor::alert::mailbox_read(&root, &config, &store, read.as_ref().err());
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = read {
            tracing::warn!("bounce reports not read: {e:#}");
        }
    }

    /// Reads the editors' inbox on a blocking thread (the store is blocking; IMAP, POP3 and
    /// the DNS lookups run on the runtime), then waits `editor.poll`. The files it writes are
    /// published by the watch of `posts/`, like any file dropped in.
    async fn read_inbox(&mut self, d: &mut Daemon) {
        let Some(resolver) = self.inbox.clone() else {
            return;
        };
        let every = d.config.editor.as_ref().map(|e| e.poll_every());
        self.inbox_at = every.map(|e| Instant::now() + e);
        let (root, config) = (d.root.clone(), d.config.clone());
        let rt = tokio::runtime::Handle::current();
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut store = Store::open(&root)?;
            Ok(rt.block_on(crate::editor::inbox::read(
                &root, &config, &mut store, &resolver,
            ))?)
        })
        .await;
        match read {
            Ok(Ok(r)) if r.new > 0 => tracing::info!(
                new = r.new,
                written = r.written.len(),
                refused = r.refused,
                strangers = r.strangers,
                forged = r.forged,
                "editor inbox read"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("editor inbox not read; its messages wait: {e:#}"),
            Err(e) => tracing::error!("editor inbox: {e}"),
        }
    }

    /// Starts an issue thread, which answers the requests waiting.
    fn start(&mut self, d: &Daemon, stop: &CancellationToken, spread: Duration) {
        self.at_tick = false;
        let retry_failed = self.asked.iter().any(|a| a.retry_failed);
        self.serving.append(&mut self.asked);
        self.sending = Some(d.start_issue(stop, spread, retry_failed));
        self.running = true;
    }

    /// After an issue thread: answers its requests, serves the ones that came meanwhile, and
    /// schedules a retry when the issue did not get out.
    async fn issue_finished(&mut self, d: &mut Daemon, stop: &CancellationToken, round: Round) {
        self.running = false;
        self.answer(d, &round).await;
        d.tell_office(&round, self.at_tick).await;
        if let Some(s) = round.outcome.as_ref().ok().filter(|s| s.issue.is_some()) {
            for a in self.asked.iter_mut().filter(|a| a.observed.is_none()) {
                a.observed = Some(s.clone());
            }
        }
        if !self.asked.is_empty() {
            d.reconcile_logged().await;
            self.start(d, stop, Duration::ZERO);
        }
        if round.outcome.is_ok() {
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
        let day = tick.with_timezone(&self.tz).date_naive();
        if let Some(why) = crate::calendar::Calendar::of(&d.config).skipped(day) {
            tracing::info!(
                "tick on {day} passes: no issue today ({why}); a pending issue waits for the next tick"
            );
        } else if self.running {
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
            self.start(d, stop, spread);
            self.at_tick = true;
        }
    }
}

/// How often the daemon looks whether a proof is due (a post changed, the review time came).
const PROOF_CHECK: Duration = Duration::from_secs(1);

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
