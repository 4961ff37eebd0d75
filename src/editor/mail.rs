//! Sends the queued editor mail: DKIM-signed like an issue, From `sender.from`, To every
//! editor, through the issues' SMTP server or into `outbox/editor-<kind>-<id>.eml`; and POSTs
//! the queued alert webhooks. A mail is marked delivered per editor after the relay's 250, so
//! a relay that fails midway repeats nobody's copy; what failed stays queued and is tried again
//! with a growing wait. A relay that refuses editor mail is itself an alert (cause `smtp`),
//! told through the webhook.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{alert, kind};
use crate::config::Config;
use crate::deliver::{smtp, Retry, SendError};
use crate::files;
use crate::message::{sender_domain, Recipient, Template};
use crate::render::email::Rendered;
use crate::store::{EditorMail, Shared};

/// How often the queue is looked at (mail is queued by the daemon, the server and commands).
pub const POLL: Duration = Duration::from_millis(500);
/// The longest wait between tries while the relay refuses: editor mail is also what notices
/// the relay is back (and tells the daemon, whose issue retries wait longer).
const MAX_WAIT: Duration = Duration::from_secs(15);

/// Sends the queue until `stop`: the daemon's office task.
pub async fn run(root: PathBuf, config: Arc<Config>, stop: CancellationToken) {
    if !super::enabled(&config) {
        return;
    }
    let store = loop {
        match Shared::open(&root).await {
            Ok(s) => break s,
            Err(e) => tracing::error!("editor mail: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MAX_WAIT) => {}
        }
    };
    let http = crate::tls::http()
        .timeout(Duration::from_secs(10))
        .build()
        .ok();
    let mut failures = 0u32;
    loop {
        let ok = flush(&root, &config, &store, http.as_ref()).await;
        if ok && failures > 0 {
            // Mail went again after failing: a stopped issue need not wait for its own retry.
            let asked = store
                .call(|s| s.request(crate::store::NUDGE, "{}", Utc::now()))
                .await;
            if let Err(e) = asked {
                tracing::warn!("editor mail: {e}");
            }
        }
        failures = if ok { 0 } else { failures + 1 };
        let wait = if ok {
            POLL
        } else {
            crate::backoff::exponential(Duration::from_secs(1), MAX_WAIT, failures - 1, 0.2)
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over the queue (`tayori send` without a daemon): what fails stays queued for the
/// next `send` or `run`.
pub async fn flush_once(root: &Path, config: &Config) {
    if !super::enabled(config) {
        return;
    }
    match Shared::open(root).await {
        Ok(store) => {
            let http = crate::tls::http()
                .timeout(Duration::from_secs(10))
                .build()
                .ok();
            flush(root, &Arc::new(config.clone()), &store, http.as_ref()).await;
        }
        Err(e) => tracing::error!("editor mail: {e}"),
    }
}

/// Sends what is queued; false when something failed (it stays queued).
async fn flush(
    root: &Path,
    config: &Arc<Config>,
    store: &Shared,
    http: Option<&reqwest::Client>,
) -> bool {
    let waiting = match store.call(|s| s.editor_mail_waiting()).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("editor mail: {e}");
            return false;
        }
    };
    let mut ok = true;
    let mut relay_failed = false;
    for m in waiting {
        if m.kind == kind::WEBHOOK {
            match post_webhook(config, http, &m).await {
                Ok(()) => mark_sent(store, m.id).await,
                Err(e) => {
                    ok = false;
                    tracing::warn!("alert webhook: {e}; tried again later");
                    let _ = store.call(move |s| s.editor_mail_failed(m.id, &e)).await;
                }
            }
            continue;
        }
        if relay_failed {
            continue;
        }
        match send(root, config, store, &m).await {
            Ok(()) => {
                mark_sent(store, m.id).await;
                tracing::info!(kind = %m.kind, subject = %m.subject, "editor mail sent");
                // Mail works: an alert that it did not is resolved.
                if config.smtp.is_some() {
                    let _ = alert::clear(root, config, store, alert::SMTP).await;
                }
            }
            Err(e) => {
                ok = false;
                relay_failed = true;
                tracing::warn!(kind = %m.kind, "editor mail not sent; it stays queued: {e}");
                let why = e.clone();
                let _ = store.call(move |s| s.editor_mail_failed(m.id, &why)).await;
                let text =
                    format!("メールを送れません。送信サーバー（SMTP）が受け付けませんでした: {e}");
                let _ = alert::raise(root, config, store, alert::SMTP, &text, true).await;
            }
        }
    }
    ok
}

async fn mark_sent(store: &Shared, id: i64) {
    if let Err(e) = store
        .call(move |s| s.editor_mail_sent(id, Utc::now()))
        .await
    {
        tracing::error!("editor mail {id}: {e}");
    }
}

/// Sends one mail to the editors who do not have it yet.
async fn send(root: &Path, config: &Config, store: &Shared, m: &EditorMail) -> Result<(), String> {
    let to = recipients(config, m);
    let message = build(root, config, m, &to).map_err(|e| e.to_string())?;
    let Some(s) = &config.smtp else {
        let path = root
            .join("outbox")
            .join(format!("editor-{}-{}.eml", m.kind, m.id));
        files::write_private(&path, message.as_bytes())
            .map_err(|e| format!("{}: {e}", files::display(&path).display()))?;
        return Ok(());
    };
    let domain = sender_domain(config);
    let target = smtp::Target::new(s.url.value()?, &domain);
    let envelope = envelope_from(config);
    let mut conn = smtp::Connection::open(&target, Retry::default().timeout)
        .await
        .map_err(|e| e.to_string())?;
    for address in to.iter().filter(|a| !m.delivered_to.contains(a)) {
        match conn.send(&envelope, address, &message, None).await {
            Ok(_) => {
                let (id, a) = (m.id, address.clone());
                store
                    .call(move |s| s.editor_mail_delivered(id, &a))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // An editor's address the relay refuses for good is said in the log; the others
            // still get it, and it is not tried again for ever.
            Err(SendError::Permanent { reply, .. }) => {
                tracing::error!(%address, "editor mail refused for this editor: {reply}");
                let (id, a) = (m.id, address.clone());
                let _ = store.call(move |s| s.editor_mail_delivered(id, &a)).await;
            }
            Err(e) => {
                conn.close().await;
                return Err(e.to_string());
            }
        }
    }
    conn.close().await;
    Ok(())
}

/// Every editor, or — for an answer to one editor's message — her alone.
fn recipients(config: &Config, m: &EditorMail) -> Vec<String> {
    match m.reply.as_ref().filter(|r| !r.sender.is_empty()) {
        Some(r) => vec![r.sender.clone()],
        None => config
            .editor
            .as_ref()
            .map(|e| e.to.clone())
            .unwrap_or_default(),
    }
}

fn envelope_from(config: &Config) -> String {
    config
        .sender
        .from
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_default()
}

/// The message as it goes to the editors (the same bytes for each).
fn build(
    root: &Path,
    config: &Config,
    m: &EditorMail,
    to: &[String],
) -> Result<String, crate::deliver::DeliverError> {
    let rendered = Rendered {
        subject: m.subject.clone(),
        preheader: String::new(),
        html: m.html.clone(),
        text: m.text.clone(),
    };
    let mut template =
        Template::new(config, &rendered, SystemTime::now())?.for_office(&m.kind, to)?;
    if let Some(r) = &m.reply {
        template = template.in_reply_to(&r.message, &r.refs);
    }
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        template = template.with_dkim(crate::message::dkim::Signer::load(root, d)?);
    }
    let domain = sender_domain(config);
    let stamp = m
        .queued_at
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    Ok(template.render(&Recipient {
        email: to.first().map_or("editor@invalid", String::as_str),
        name: "",
        unsubscribe_url: "",
        message_id: format!("<editor-{}-{}.{stamp}@{domain}>", m.kind, m.id),
    })?)
}

async fn post_webhook(
    config: &Config,
    http: Option<&reqwest::Client>,
    m: &EditorMail,
) -> Result<(), String> {
    let Some(url) = config
        .editor
        .as_ref()
        .and_then(|e| e.alert_webhook.as_deref())
    else {
        return Ok(());
    };
    let http = http.ok_or("no HTTP client")?;
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(m.text.clone());
    // With a webhook secret, signed as the post webhooks are (Standard Webhooks): a receiver
    // of ours can tell it is tayori; chat services ignore the headers.
    if let Ok(key) = config.webhook_key() {
        let (id, ts) = (format!("alert_{}", m.id), Utc::now().timestamp());
        request = request
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                crate::signature::webhook(&key, &id, ts, &m.text),
            );
    }
    let r = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {}", r.status()))
    }
}
