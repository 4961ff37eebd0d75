//! Delivering the cross-post queues: one task per target, each with its own store connection,
//! so a target that is slow or down never holds back another.
//!
//! Every target follows the webhook's rules: a 2xx is done; 410 Gone is final; anything else or
//! a timeout is retried with exponential backoff for three days, across restarts. A 401 or 403
//! from WordPress or Micropub means the credentials are wrong: retrying cannot help, so that
//! target stops, says why (in the log and in `status`), and keeps its events pending until it
//! is started again with working credentials.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{backoff, signature, GIVE_UP_AFTER, MICROPUB, PING, WORDPRESS};
use crate::config::Config;
use crate::store::{CrosspostEvent, Shared, StoreError};

/// A cross-post target, with its own queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Webhook,
    WebSub,
    WordPress,
    Micropub,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Webhook,
        Target::WebSub,
        Target::WordPress,
        Target::Micropub,
    ];

    /// The name in logs, `status` and the store.
    pub const fn name(self) -> &'static str {
        match self {
            Target::Webhook => "webhook",
            Target::WebSub => "websub",
            Target::WordPress => "wordpress",
            Target::Micropub => "micropub",
        }
    }

    /// The start of the event names in this target's queue.
    fn prefix(self) -> &'static str {
        match self {
            Target::Webhook => "post.",
            Target::WebSub => PING,
            Target::WordPress => WORDPRESS,
            Target::Micropub => MICROPUB,
        }
    }

    /// Whether an event name belongs to this target's queue.
    pub fn owns(self, event: &str) -> bool {
        event.starts_with(self.prefix())
    }

    /// Whether `tayori.yaml` turns this target on.
    pub fn enabled(self, config: &Config) -> bool {
        match self {
            Target::Webhook => config.webhook.is_some(),
            Target::WebSub => !config.hubs().is_empty(),
            Target::WordPress => config.wordpress.is_some(),
            Target::Micropub => config.micropub.is_some(),
        }
    }

    /// The `meta` key that holds why this target stopped.
    pub fn stopped_key(self) -> String {
        format!("crosspost.{}.stopped", self.name())
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub(super) enum Answer {
    /// Done, with the status to record.
    Done(String),
    /// Final without success (410 Gone).
    Gone(String),
    /// Try again later.
    Retry(String),
    /// The target refuses our credentials: stop it, keep the event pending.
    Stop(String),
}

impl Answer {
    /// The usual reading of an HTTP answer; `what` names the request in a stop message.
    pub(super) fn of_status(status: reqwest::StatusCode, detail: &str, what: &str) -> Answer {
        let code = status.as_u16().to_string();
        match status.as_u16() {
            200..=299 => Answer::Done(code),
            401 | 403 => Answer::Stop(format!("{what} answered {code}: {detail}")),
            410 => Answer::Gone(code),
            _ => Answer::Retry(format!("{code} {detail}").trim().to_string()),
        }
    }
}

/// Delivers every due event of `target` once; returns why the target stopped, if it did.
async fn deliver_due(
    root: &std::path::Path,
    config: &Config,
    store: &Shared,
    http: &reqwest::Client,
    target: Target,
) -> Result<Option<String>, StoreError> {
    let due = store
        .call(move |s| s.due_events(target.prefix(), Utc::now()))
        .await?;
    for ev in &due {
        let outcome = match target {
            Target::Webhook => webhook(config, http, ev).await,
            Target::WebSub => ping(http, ev).await,
            Target::WordPress | Target::Micropub => {
                match serde_json::from_str::<super::Mirror>(&ev.body) {
                    Err(e) => Answer::Gone(format!("unreadable event: {e}")),
                    Ok(m) if target == Target::WordPress => {
                        super::wordpress::sync(root, config, store, http, &m).await?
                    }
                    Ok(m) => super::micropub::sync(config, store, http, &m).await?,
                }
            }
        };
        let now = Utc::now();
        let (status, state, next, stop) = match outcome {
            Answer::Done(s) => (s, "delivered", now, None),
            Answer::Gone(s) => (s, "gone", now, None),
            Answer::Retry(s) => {
                let (s, state, next) = retry(ev, s, now);
                (s, state, next, None)
            }
            Answer::Stop(why) => (why.clone(), "pending", now, Some(why)),
        };
        tracing::info!(id = %ev.id, event = %ev.event, slug = %ev.slug, attempt = ev.attempts + 1, %status, state, "cross-post attempt");
        let id = ev.id.clone();
        store
            .call(move |s| s.record_crosspost_attempt(&id, &status, state, next, now))
            .await?;
        if let Some(why) = stop {
            let why = format!("{} stopped: {why}", target.name());
            let shown = why.clone();
            store
                .call(move |s| s.set_meta(&target.stopped_key(), &shown))
                .await?;
            return Ok(Some(why));
        }
    }
    Ok(None)
}

async fn webhook(config: &Config, http: &reqwest::Client, ev: &CrosspostEvent) -> Answer {
    let Some(hook) = &config.webhook else {
        return Answer::Retry("webhook: not configured".into());
    };
    let key = match config.webhook_key() {
        Ok(k) => k,
        Err(e) => return Answer::Retry(e),
    };
    let ts = Utc::now().timestamp();
    let request = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &ev.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature(&key, &ev.id, ts, &ev.body))
        .body(ev.body.clone());
    send(request).await
}

/// A WebSub publish ping (W3C WebSub §7): `hub.mode=publish`, `hub.url=<feed>`. An event
/// that does not name both is final (logged with the cause), never a ping to "".
async fn ping(http: &reqwest::Client, ev: &CrosspostEvent) -> Answer {
    #[derive(serde::Deserialize)]
    struct Ping {
        hub: String,
        feed: String,
    }
    let ping: Ping = match serde_json::from_str(&ev.body) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(id = %ev.id, "unreadable WebSub ping event, not sent: {e}");
            return Answer::Gone(format!("unreadable event: {e}"));
        }
    };
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "publish")
        .append_pair("hub.url", &ping.feed)
        .finish();
    let request = http
        .post(&ping.hub)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    send(request).await
}

/// A response body as JSON, `null` when it is not (WordPress and Micropub explain their
/// errors in JSON; anything else is only a status).
pub(super) async fn json_body(r: reqwest::Response) -> serde_json::Value {
    let bytes = r.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// Sends a webhook or ping: any 2xx is done, 410 final, the rest retried (401/403 included: a
/// receiver may be misconfigured for a while, and the webhook contract retries for three days:
/// [`super::GIVE_UP_AFTER`]).
async fn send(request: reqwest::RequestBuilder) -> Answer {
    match request.timeout(Duration::from_secs(30)).send().await {
        Ok(r) if r.status().is_success() => Answer::Done(r.status().as_u16().to_string()),
        Ok(r) if r.status() == reqwest::StatusCode::GONE => Answer::Gone("410".into()),
        Ok(r) => Answer::Retry(r.status().as_u16().to_string()),
        Err(e) => Answer::Retry(format!("error: {e}")),
    }
}

fn retry(
    ev: &CrosspostEvent,
    status: String,
    now: DateTime<Utc>,
) -> (String, &'static str, DateTime<Utc>) {
    if now.signed_duration_since(ev.created_at) > GIVE_UP_AFTER {
        return (status, "failed", now);
    }
    let wait =
        chrono::TimeDelta::from_std(backoff(ev.attempts)).unwrap_or(chrono::TimeDelta::hours(1));
    (status, "pending", now + wait)
}

/// Delivers every enabled target's queue until `stop`; each wakes when events are queued or
/// come due.
/// How a target's queue tells whoever watches it (the daemon, which alerts the office) that it
/// stopped, with why (credentials refused), or that it delivers (`None`).
pub type Told = tokio::sync::mpsc::UnboundedSender<(&'static str, Option<String>)>;

pub async fn run_queues(
    root: PathBuf,
    config: Arc<Config>,
    wake: Arc<Notify>,
    told: Told,
    stop: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut wakes = Vec::new();
    for target in Target::ALL.into_iter().filter(|t| t.enabled(&config)) {
        let own = Arc::new(Notify::new());
        wakes.push(own.clone());
        let (root, config, stop) = (root.clone(), config.clone(), stop.clone());
        tasks.spawn(run_target(root, config, own, told.clone(), stop, target));
    }
    if wakes.is_empty() {
        return;
    }
    // One wake-up from the publisher reaches every target (each keeps a permit if busy).
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.notified() => wakes.iter().for_each(|w| w.notify_one()),
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn run_target(
    root: PathBuf,
    config: Arc<Config>,
    wake: Arc<Notify>,
    told: Told,
    stop: CancellationToken,
    target: Target,
) {
    let name = target.name();
    let http = match crate::tls::http().build() {
        Ok(c) => c,
        Err(e) => return tracing::error!("{name}: HTTP client: {e}"),
    };
    let store = loop {
        match Shared::open(&root).await {
            Ok(s) => break s,
            Err(e) => tracing::error!("{name} queue: {e}; trying again in {STORE_RETRY:?}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(STORE_RETRY) => {}
        }
    };
    // A restart is how an operator says the credentials are fixed.
    let cleared = store
        .call(move |s| s.set_meta(&target.stopped_key(), ""))
        .await;
    if let Err(e) = cleared {
        tracing::error!("{name} queue: {e}");
    }
    loop {
        let failed = match deliver_due(&root, &config, &store, &http, target).await {
            Ok(Some(why)) => {
                let _ = told.send((name, Some(why.clone())));
                return tracing::error!(
                    "{why} — its events stay queued; fix the credentials and restart tayori"
                );
            }
            Ok(None) => {
                let _ = told.send((name, None));
                false
            }
            Err(e) => {
                tracing::error!("{name} queue: {e}; trying again in {STORE_RETRY:?}");
                true
            }
        };
        let wait = match store.call(move |s| s.next_event_due(target.prefix())).await {
            // An event whose attempt could not be recorded is due at once again: not in a loop.
            _ if failed => STORE_RETRY,
            Ok(Some(t)) => (t.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or_default(),
            // Nothing queued: a publish wakes the task; the hour is only a safety net.
            Ok(None) => Duration::from_secs(3600),
            // The store could not say: ask again soon rather than guess "nothing for an hour".
            Err(e) => {
                tracing::error!("{name} queue: {e}; trying again in {STORE_RETRY:?}");
                STORE_RETRY
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How soon a queue whose store failed is tried again.
const STORE_RETRY: Duration = Duration::from_secs(30);
