//! Cross-posting: each published, edited or deleted post becomes a webhook event, persisted in
//! the store's cross-post queue and POSTed to `webhook.url` signed per the Standard Webhooks spec
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, secret `whsec_<base64>`).
//!
//! The id is derived from the post id, event and revision, so a retry — even after a restart —
//! carries the same id and receivers can drop duplicates. 2xx is success; 410 Gone stops
//! retrying; anything else (or a timeout) is retried with exponential backoff for three days.
//!
//! The other targets — WebSub hubs, WordPress ([`wordpress`]) and Micropub ([`micropub`]) —
//! have their own queues in the same table (by event name) with the same retry rules, each
//! delivered by its own task ([`queue`]), so one failing target never holds back another.

mod micropub;
mod queue;
mod wordpress;

pub use queue::{run_queues, Target, Told};

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::render::{feed::content_html, Entry};
use crate::store::{Store, StoreError};

/// How long an event is retried before it is given up.
pub const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(3);
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`]. `TAYORI_WEBHOOK_FIRST_RETRY_MS`
/// overrides it (tests, or an impatient operator).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// `post.published`, `post.updated` or `post.deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Published,
    Updated,
    Deleted,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Published => "post.published",
            Event::Updated => "post.updated",
            Event::Deleted => "post.deleted",
        }
    }
}

/// The `webhook-id` of an event: `msg_` and 24 hex digits of SHA-256(post id, event, revision).
pub fn event_id(post_id: &str, event: Event, revision: &str) -> String {
    let h = Sha256::digest(format!("{post_id}\n{}\n{revision}", event.as_str()));
    format!("msg_{}", crate::content::hex(&h[..12]))
}

/// Queues the events of a post's change: the webhook event (with `webhook:`), a WebSub ping
/// per hub and feed (with `websub.hubs`), and the post's new state for WordPress and Micropub.
pub fn queue(
    config: &Config,
    store: &Store,
    event: Event,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    queue_pings(config, store, event, entry, now)?;
    queue_mirrors(config, store, event, entry, now)?;
    if config.webhook.is_none() {
        return Ok(());
    }
    let p = &entry.post;
    let url = config.post_url(&p.slug);
    let text: String = [&p.lead]
        .into_iter()
        .chain(p.sections.iter().map(|s| &s.body))
        .map(|b| b.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let deleted = event == Event::Deleted;
    let body = serde_json::json!({
        "type": event.as_str(),
        "timestamp": now.to_rfc3339(),
        "data": {
            "id": url,
            "slug": p.slug,
            "kind": p.kind.as_str(),
            "title": p.title,
            "url": url,
            "html": if deleted { String::new() } else { content_html(config, entry) },
            "text": if deleted { String::new() } else { text },
            "summary": p.summary(),
            "tags": p.tags,
            "published_at": entry.published.to_rfc3339(),
            "updated_at": entry.updated.to_rfc3339(),
            "language": config.site.language,
            "revision": p.hash,
            "editors_note_html": if deleted { None } else { p.editors_note.as_ref().map(|n| n.html.clone()) },
        }
    });
    let id = event_id(&url, event, &p.hash);
    if store.queue_crosspost(&id, event.as_str(), &p.slug, &body.to_string(), now)? {
        tracing::info!(%id, event = event.as_str(), slug = %p.slug, "webhook queued");
    }
    Ok(())
}

pub use crate::signature::webhook as signature;

/// The wait after `attempts` failed attempts.
pub fn backoff(attempts: i64) -> Duration {
    let first = std::env::var("TAYORI_WEBHOOK_FIRST_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(FIRST_BACKOFF, Duration::from_millis);
    crate::backoff::exponential(first, MAX_BACKOFF, attempts.clamp(0, 16) as u32, 0.2)
}

/// The event of a WebSub publish ping (W3C WebSub §7): `hub.mode=publish`, `hub.url=<feed>`.
pub const PING: &str = "websub.publish";

/// Queues a publish ping to every hub for every feed (with `websub.hubs`), one per change: the
/// same retry rules as the webhook, in the same persisted queue.
fn queue_pings(
    config: &Config,
    store: &Store,
    event: Event,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let base = config.public_base();
    let post = config.post_url(&entry.post.slug);
    for hub in config.hubs() {
        for feed in ["feed.xml", "atom.xml", "feed.json"] {
            let feed = format!("{base}/{feed}");
            let key = format!("{hub}\n{feed}\n{post}");
            let id = event_id(&key, event, &entry.post.hash).replacen("msg_", "ping_", 1);
            let body = serde_json::json!({ "hub": hub, "feed": feed }).to_string();
            store.queue_crosspost(&id, PING, &entry.post.slug, &body, now)?;
        }
    }
    Ok(())
}

/// The event a mirroring target (WordPress, Micropub) gets: the post as it now is.
pub const WORDPRESS: &str = "wordpress.sync";
/// See [`WORDPRESS`].
pub const MICROPUB: &str = "micropub.sync";

/// What a mirroring target needs to make its copy of a post match ours.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Mirror {
    /// `published`, `updated` or `deleted`.
    pub action: String,
    pub slug: String,
    pub title: String,
    pub html: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub published_at: String,
    pub url: String,
    /// The post's pictures: their names under `public/media/` (absent in events queued before
    /// pictures existed).
    #[serde(default)]
    pub pictures: Vec<String>,
}

/// Queues the post's state for WordPress and Micropub (articles only: notes are not blog
/// posts). Only the newest state of a post waits: older pending ones are superseded, so a
/// target never applies an old edit after a new one.
fn queue_mirrors(
    config: &Config,
    store: &Store,
    event: Event,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let targets = [
        (WORDPRESS, config.wordpress.is_some()),
        (MICROPUB, config.micropub.is_some()),
    ];
    if entry.post.kind != crate::content::Kind::Article || !targets.iter().any(|t| t.1) {
        return Ok(());
    }
    let p = &entry.post;
    let deleted = event == Event::Deleted;
    let mirror = Mirror {
        action: event.as_str().trim_start_matches("post.").into(),
        slug: p.slug.clone(),
        title: p.title.clone(),
        html: if deleted {
            String::new()
        } else {
            content_html(config, entry)
        },
        summary: p.summary(),
        tags: p.tags.clone(),
        published_at: entry.published.to_rfc3339(),
        url: config.post_url(&p.slug),
        pictures: p.pictures.iter().map(|p| p.encoded.name.clone()).collect(),
    };
    let body = serde_json::to_string(&mirror).expect("a Mirror serialises");
    for (name, on) in targets {
        if !on {
            continue;
        }
        // One event per change, even back to an earlier revision: a mirror must end at ours.
        let key = format!("{name}\n{}\n{}", mirror.url, now.to_rfc3339());
        let id = event_id(&key, event, &p.hash).replacen("msg_", "sync_", 1);
        store.queue_crosspost(&id, name, &p.slug, &body, now)?;
        store.supersede_events(name, &p.slug, &id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_post_event_and_revision() {
        let a = event_id("https://e.jp/posts/a.html", Event::Published, "r1");
        assert_eq!(
            a,
            event_id("https://e.jp/posts/a.html", Event::Published, "r1")
        );
        assert_ne!(
            a,
            event_id("https://e.jp/posts/a.html", Event::Updated, "r1")
        );
        assert_ne!(
            a,
            event_id("https://e.jp/posts/a.html", Event::Published, "r2")
        );
        assert!(a.starts_with("msg_") && a.len() == 28);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= FIRST_BACKOFF && backoff(0) < FIRST_BACKOFF * 2);
        assert!(backoff(3) >= FIRST_BACKOFF * 8);
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
