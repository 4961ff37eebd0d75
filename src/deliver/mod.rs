//! Delivery: the pending issue → every subscriber's inbox, each exactly once.
//!
//! One issue is made per run from the posts published since the last one (rendered once and
//! kept in the store), then `smtp.concurrency` workers — each with one long-lived SMTP
//! connection, or writing `.eml` files to `outbox/` when no SMTP server is configured — take
//! deliveries claimed in batches from the ledger. A delivery is marked `sent` only after the
//! server's 250 for its DATA; outcomes are committed in groups by a committer task on the
//! sending thread, so bookkeeping never holds up the senders. After a crash, `send` resumes the unfinished issue
//! and repeats at most the messages that were in flight.

mod breaker;
mod committer;
pub mod next_issue;
pub mod pacing;
pub mod single;
pub mod smtp;
mod worker;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::files;
use crate::lock::SenderLock;
use crate::message::{sender_domain, Template};
use crate::publish;
use crate::render::{self, email::Rendered};
use crate::store::{IssueRecord, Journal, JournalError, Store, StoreError};
use crate::subscribers;
use crate::unsubscribe::Key;

/// How one attempt failed, and so what it decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 4xx for this message, a timeout or a connection dropped mid-message: retry with backoff.
    #[error("{0}")]
    Transient(String),
    /// 5xx at RCPT or at the end of DATA: this one recipient fails, never retried; `stage`
    /// says which (a "user unknown" at DATA is a filter, not a missing mailbox).
    #[error("{reply}")]
    Permanent {
        reply: String,
        stage: crate::bounces::Stage,
    },
    /// Not about one recipient — connecting, TLS, EHLO, AUTH, MAIL FROM, DATA, or writing
    /// `outbox/`. It never fails a subscriber: after a short bounded retry (none when
    /// `permanent`: a 5xx, a wrong password) the run stops and every unsent delivery stays
    /// pending.
    #[error("{cause}")]
    Server { cause: String, permanent: bool },
}

/// Why a whole run failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Build(#[from] publish::BuildError),
    #[error(transparent)]
    Render(#[from] render::email::RenderError),
    #[error(transparent)]
    Message(#[from] crate::message::MessageError),
    /// `smtp.url` does not parse (only in a configuration that skipped validation).
    #[error("{0}")]
    SmtpUrl(String),
    #[error(transparent)]
    Dkim(#[from] crate::message::dkim::DkimError),
    #[error("unsubscribe key: {0}")]
    Key(std::io::Error),
    /// A single message (`send --test`, a sign-up confirmation) that did not go out.
    #[error("message not sent: {0}")]
    One(String),
    /// The sending tasks failed themselves (a bug, not a fault outside).
    #[error("sending stopped: {0}")]
    Internal(String),
    /// The pending issue is held, or awaits an editor's approval (`editor.approval`): nothing
    /// is sent and it stays pending.
    #[error("{0}")]
    Gated(String),
    /// The run stopped early for a cause that is not about one recipient; what was not sent
    /// stays pending and the next run resumes it.
    #[error("{cause} — stopped after {sent} sent; {left} left pending for the next run")]
    Stopped { cause: String, sent: u64, left: u64 },
}

/// Retry timing for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per delivery in one run before it is left `pending` for the next run.
    pub attempts: u32,
    /// First backoff; doubles each time, with up to 50% random jitter.
    pub base: Duration,
    pub max: Duration,
    /// Limit on one message's whole SMTP exchange (lettre's timeout covers only connect).
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The wait before attempt `n + 1` (n ≥ 1).
    pub fn backoff(&self, n: u32) -> Duration {
        crate::backoff::exponential(self.base, self.max, n.saturating_sub(1), 0.5)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// The issue sent or resumed.
    pub issue: Option<i64>,
    pub subject: String,
    pub sent: u64,
    pub failed: u64,
    /// Left pending after transient failures (the next run retries them).
    pub deferred: u64,
    /// Where messages went: `outbox/` or the SMTP server.
    pub destination: String,
    /// The run was stopped (SIGINT/SIGTERM) before the issue was done.
    pub interrupted: bool,
    /// The last reply of a deferred delivery, to say why.
    pub last_deferral: Option<String>,
}

/// The issue to send now, for `send` and the daemon alike: the store is first checked against
/// `issues.log` (a restored backup must not mail an issue again), then an unfinished issue is
/// resumed or a new one made of the posts waiting — journaled before its first message.
pub fn issue_to_send(
    root: &Path,
    config: &Config,
    store: &mut Store,
    entries: &[render::Entry],
    _held: &SenderLock,
) -> Result<Option<IssueRecord>, DeliverError> {
    let journal = Journal::of(root);
    journal.check(store)?;
    if let Some(issue) = store.unfinished_issue()? {
        if !journal.read()?.contains_key(&issue.id) {
            journal.started(&issue, &issue.slugs)?;
        }
        return Ok(Some(issue));
    }
    let approval = config.editor.as_ref().is_some_and(|e| e.approval);
    match store.gate(approval)? {
        crate::store::Gate::Open => {}
        crate::store::Gate::Held => {
            return Err(DeliverError::Gated(
                "the pending issue is on hold (tayori hold): nothing was sent; `tayori release` lets it go".into(),
            ))
        }
        crate::store::Gate::AwaitingApproval => {
            return Err(DeliverError::Gated(
                "the pending issue awaits an editor's approval (editor.approval: true): nothing was sent; approve it with the proof's link or `tayori release`".into(),
            ))
        }
    }
    let Some(issue) = make_issue(root, config, store, entries, journal.next_id()?)? else {
        return Ok(None);
    };
    journal.started(&issue, &issue.slugs)?;
    Ok(Some(issue))
}

/// Makes the pending issue, if any posts wait for one: rendered once and stored with its
/// deliveries (the lists and the confirmed sign-ups, minus suppressed addresses) in one
/// transaction. An audience that cannot be read in full, or is empty, makes no issue: the posts
/// stay pending.
pub fn make_issue(
    root: &Path,
    config: &Config,
    store: &mut Store,
    entries: &[render::Entry],
    first_id: i64,
) -> Result<Option<IssueRecord>, DeliverError> {
    purge_records(config, store)?;
    let pending = store.pending_posts()?;
    let posts: Vec<&render::Entry> = entries
        .iter()
        .filter(|e| pending.contains(&e.post.slug))
        .collect();
    let css = render::load_css(root).map_err(publish::BuildError::Css)?;
    let Some((posts, rendered)) = render_issue(config, posts, &css)? else {
        return Ok(None);
    };
    // A post limited to some lists narrows the audience only if every post in the issue is.
    let lists: Vec<String> = if posts.iter().any(|e| e.post.lists.is_empty()) {
        Vec::new()
    } else {
        posts.iter().flat_map(|e| e.post.lists.clone()).collect()
    };
    let domain = sender_domain(config);
    let slugs: Vec<String> = posts.iter().map(|e| e.post.slug.clone()).collect();
    let dir = root.join("subscribers");
    // Confirmed sign-ups join the lists' audience (an address on both gets one copy).
    let signups: Vec<_> = store
        .signups()?
        .into_iter()
        .filter(|s| s.state == "subscribed" && (lists.is_empty() || lists.contains(&s.list)))
        .collect();
    let issue = store.create_issue(
        first_id,
        Utc::now(),
        (&rendered.subject, &rendered.html, &rendered.text),
        &slugs,
        |add| {
            let problems = subscribers::each(&dir, |s| {
                if subscribers::in_lists(&s, &lists) {
                    add(&subscribers::key(s.email), s.email, s.name);
                }
            });
            for s in &signups {
                add(&s.address, &s.email, &s.name);
            }
            for p in &problems.rows {
                tracing::warn!(file = %p.path.display(), "{p}");
            }
            match problems.unreadable.first() {
                None => Ok(()),
                Some(p) => Err(format!(
                    "the subscriber lists cannot be read, so no issue was made and the posts stay pending: {p}"
                )),
            }
        },
        |id, _| {
            format!(
                "<{id}.{:016x}{:08x}@{domain}>",
                fastrand::u64(..),
                fastrand::u32(..)
            )
        },
    )?;
    Ok(Some(issue))
}

/// Before an issue is made: consent records of addresses gone for a month, and issue records
/// older than `records.keep`, are purged.
fn purge_records(config: &Config, store: &mut Store) -> Result<(), DeliverError> {
    let now = Utc::now();
    let records_from = now - config.records_keep();
    let purged = store.purge_old_records(now, records_from)?;
    if purged > 0 {
        tracing::info!(
            purged,
            "records of unsubscribed addresses purged (kept as hashes)"
        );
    }
    let expired = store.purge_expired_records(records_from)?;
    if expired > 0 {
        tracing::info!(
            expired,
            "issue records older than records.keep purged (content and recipients)"
        );
    }
    Ok(())
}

/// `send --retry-failed`: the last issue's failed deliveries are pending again and the issue
/// reopened (in `issues.log` too); returns the issue and how many, `None` before any issue.
pub fn requeue_failed(root: &Path, store: &Store) -> Result<Option<(i64, usize)>, DeliverError> {
    let Some((id, n)) = store.retry_failed()? else {
        return Ok(None);
    };
    if let Some(issue) = store.issue(id)?.filter(|_| n > 0) {
        Journal::of(root).reopened(&issue)?;
    }
    Ok(Some((id, n)))
}

/// Renders the issue of `posts`. A post whose email panics while rendering (a bug) is left
/// out, logged with its file, and stays pending: it never holds up the others.
fn render_issue<'a>(
    config: &Config,
    mut posts: Vec<&'a render::Entry>,
    css: &str,
) -> Result<Option<(Vec<&'a render::Entry>, Rendered)>, DeliverError> {
    if posts.is_empty() {
        return Ok(None);
    }
    let whole = |posts: &[&render::Entry]| {
        for e in posts {
            publish::panic_if_asked(&e.post.source, "email");
        }
        render::email::render(config, posts, css)
    };
    let nowhere = Path::new("");
    if let Ok(rendered) = publish::guarded(nowhere, "email", || whole(&posts)) {
        return Ok(Some((posts, rendered?)));
    }
    posts.retain(|e| {
        let alone = publish::guarded(nowhere, "email", || whole(&[*e]));
        if let Err(why) = &alone {
            tracing::error!(
                file = %files::display(&e.post.source).display(),
                "this post's email could not be made (a bug in tayori; please report it): {why}; it stays pending, the issue goes without it"
            );
        }
        alone.is_ok()
    });
    if posts.is_empty() {
        return Ok(None);
    }
    let rendered = whole(&posts)?;
    Ok(Some((posts, rendered)))
}

/// Reads the bounce mailbox (`bounces.mailbox`) before an issue, so that its suppressions
/// hold for it. A mailbox that cannot be read decides nothing: it is said, and sending goes on;
/// the caller tells the office when it stays unreadable (`editor::alert::mailbox_read`).
/// Returns what the reading gave, `None` without a mailbox.
pub async fn read_bounces(
    root: &Path,
    config: &Config,
    store: &mut Store,
) -> Option<Result<(), String>> {
    use crate::mailbox::bounces as mailbox;
    let b = config.bounces.as_ref().filter(|b| b.mailbox.is_some())?;
    let key = match Key::load_or_create(root) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("bounce reports not read: {e}");
            return None;
        }
    };
    let reader = mailbox::Reader {
        key: &key,
        tagged_only: b.address.is_some(),
        delete: b.processed == crate::config::Processed::Delete,
    };
    let Some(Ok(url)) = b.mailbox_url() else {
        return None;
    };
    let read = mailbox::read(&url, store, &reader)
        .await
        .map_err(|e| e.to_string());
    match &read {
        Ok(r) if r.reports > 0 || r.parsed > 0 => tracing::info!(
            reports = r.reports,
            parsed = r.parsed,
            matched = r.matched,
            kept = r.kept,
            suppressed = r.suppressed.len(),
            "bounce reports read"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("bounce reports not read: {e}"),
    }
    Some(read.map(|_| ()))
}

/// `tayori send`: publishes what is due, then sends (or resumes) one issue.
/// The bounce mailbox is read first by the caller ([`read_bounces`]), so that its suppressions
/// hold for this issue.
pub async fn send(
    root: &Path,
    config: &Config,
    mut store: Store,
    held: &SenderLock,
    retry: Retry,
    progress: bool,
    stop: CancellationToken,
) -> Result<Summary, DeliverError> {
    let report = publish::build(root, config, &store, Utc::now())?;
    for p in &report.problems {
        tracing::warn!(file = %p.path.display(), "{p}; skipped");
    }
    let Some(issue) = issue_to_send(root, config, &mut store, &report.entries, held)? else {
        return Ok(Summary::default());
    };
    deliver_issue(root, config, store, held, &issue, retry, progress, stop).await
}

/// The issue's message, made once for every recipient: DKIM-signed when `smtp.dkim` is set.
fn issue_template(
    root: &Path,
    config: &Config,
    issue: &IssueRecord,
) -> Result<Template, DeliverError> {
    let rendered = Rendered {
        subject: issue.subject.clone(),
        preheader: String::new(),
        html: issue.html.clone(),
        text: issue.text.clone(),
    };
    let mut template =
        Template::new(config, &rendered, SystemTime::now())?.with_feedback_id(config, issue.id);
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        template = template.with_dkim(crate::message::dkim::Signer::load(root, d)?);
    }
    Ok(template)
}

/// Where the messages go: the SMTP server of `smtp.url`, else `outbox/`.
fn transport(root: &Path, config: &Config) -> Result<worker::Transport, DeliverError> {
    Ok(match &config.smtp {
        Some(s) => {
            let url = s.url.value().map_err(DeliverError::SmtpUrl)?;
            worker::Transport::Smtp(smtp::Target::new(url, &sender_domain(config)))
        }
        None => worker::Transport::Outbox(root.join("outbox")),
    })
}

/// `bounces.address` split at `@`, for VERP envelope senders.
fn verp(config: &Config) -> Option<(String, String)> {
    config
        .bounces
        .as_ref()
        .and_then(|b| b.address.as_deref())
        .and_then(|a| a.split_once('@'))
        .map(|(l, d)| (l.to_string(), d.to_string()))
}

/// Sends every delivery of `issue` still pending.
#[allow(clippy::too_many_arguments)]
pub async fn deliver_issue(
    root: &Path,
    config: &Config,
    store: Store,
    held: &SenderLock,
    issue: &IssueRecord,
    retry: Retry,
    progress: bool,
    stop: CancellationToken,
) -> Result<Summary, DeliverError> {
    let key = Key::load_or_create(root).map_err(DeliverError::Key)?;
    let template = Arc::new(issue_template(root, config, issue)?);
    let transport = transport(root, config)?;
    let destination = match &transport {
        worker::Transport::Smtp(t) => format!("{}:{}", t.host, t.port),
        worker::Transport::Outbox(p) => files::display(p).display().to_string(),
    };
    let concurrency = config.smtp.as_ref().map_or(1, |s| s.concurrency.max(1)) as usize;
    let rate = config.smtp.as_ref().map_or(0, |s| s.max_per_second);
    store.requeue_in_flight(issue.id, held)?;
    tracing::info!(issue = issue.id, subject = %issue.subject, to = %destination, "sending");
    let run = worker::Run {
        issue: issue.id,
        template,
        key,
        public_base: config.public_base(),
        transport,
        retry,
        concurrency,
        rate,
        progress,
        verp: verp(config),
        // Pacing is for SMTP; `.eml` files in outbox/ go at disk speed.
        pacing: match &config.smtp {
            Some(_) => pacing::groups(config),
            None => Vec::new(),
        },
    };
    let (store, counts, stopped) = run.execute(store, stop.clone()).await?;
    store.requeue_in_flight(issue.id, held)?;
    if let Some(cause) = stopped {
        let left = store.count_in(issue.id, "pending")?;
        return Err(DeliverError::Stopped {
            cause,
            sent: counts.sent,
            left,
        });
    }
    let done = store.finish_issue(issue.id)?;
    if done {
        if let Err(e) = Journal::of(root).done(issue) {
            tracing::warn!("issue {} is done, but {e}", issue.id);
        }
    }
    Ok(Summary {
        issue: Some(issue.id),
        subject: issue.subject.clone(),
        sent: counts.sent,
        failed: counts.failed,
        deferred: counts.deferred,
        destination,
        interrupted: !done && stop.is_cancelled(),
        last_deferral: counts.last_deferral,
    })
}
