//! Sending the queued sign-up confirmations ([`crate::store::Confirmation`]): at once when a
//! request is recorded, then again with the issue deliveries' backoff while the relay is down
//! or answers 4xx, across restarts (the queue is in the store), until the relay takes the
//! message or refuses it for good with a 5xx for the address. A queued confirmation older than
//! the token's 72 hours is given up (the reader may ask again). Each attempt runs on a blocking
//! thread: it reads the CSS and the DKIM key, inlines the CSS, signs and writes the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::TOKEN_LIFETIME;
use crate::config::Config;
use crate::deliver::single::{transmit_one, One};
use crate::deliver::{Retry, SendError};
use crate::store::signups::digest;
use crate::store::{Confirmation, ConfirmationOutcome, Store};
use crate::unsubscribe::Key;
use crate::unsubscribe::Link;

/// How long a claimed confirmation is another sender's: longer than one SMTP exchange may take.
const LEASE: TimeDelta = TimeDelta::minutes(3);
/// How often the queue is looked at with nothing due (another process may have added to it).
const IDLE: Duration = Duration::from_secs(300);

/// Sends due confirmations until `stop`, woken by `wake` when a request is queued.
pub async fn run(
    root: std::path::PathBuf,
    config: Arc<Config>,
    key: Key,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let wait = match send_due(&root, &config, &key, &stop).await {
            Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            Ok(None) => IDLE,
            Err(e) => {
                tracing::error!("sign-up confirmations: {e:#}; trying again in a minute");
                Duration::from_secs(60)
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait.min(IDLE)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Sends every due confirmation, one at a time, stopping at the first that is deferred (the
/// relay is down: the others would be too). Returns when the next one falls due. For `send`
/// and `serve` as for the daemon.
pub async fn send_due(
    root: &Path,
    config: &Arc<Config>,
    key: &Key,
    stop: &CancellationToken,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    while !stop.is_cancelled() {
        let (root, config, key) = (root.to_path_buf(), config.clone(), key.clone());
        let done = tokio::task::spawn_blocking(move || attempt(&root, &config, &key)).await??;
        match done {
            None => break,
            Some(ConfirmationOutcome::Deferred { .. }) => break,
            Some(_) => {}
        }
    }
    let root = root.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || Store::open(&root)?.next_confirmation_due()).await??)
}

/// [`send_due`] for a process without a server (`tayori send`): the confirmations due now.
pub async fn send_pending(root: &Path, config: &Config) -> anyhow::Result<()> {
    if config.subscribe.is_none() {
        return Ok(());
    }
    let key = Key::load_or_create(root)?;
    let config = Arc::new(config.clone());
    send_due(root, &config, &key, &CancellationToken::new()).await?;
    Ok(())
}

/// One attempt on the oldest due confirmation, on a blocking thread; `None` when none is due.
fn attempt(root: &Path, config: &Config, key: &Key) -> anyhow::Result<Option<ConfirmationOutcome>> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let token = B64.encode(raw);
    let store = Store::open(root)?;
    let now = Utc::now();
    let Some(c) =
        store.claim_confirmation(now, now + LEASE, &digest(&token), now + TOKEN_LIFETIME)?
    else {
        return Ok(None);
    };
    let outcome = match send(root, config, key, &c, &token) {
        Ok(Ok(to)) => {
            tracing::info!(%to, "sign-up confirmation sent");
            ConfirmationOutcome::Sent
        }
        Ok(Err(SendError::Permanent { reply, .. })) => {
            tracing::warn!(address = %c.address, %reply, "sign-up confirmation refused");
            ConfirmationOutcome::Refused(reply)
        }
        Ok(Err(e)) => deferred(&c, e.to_string(), now),
        Err(e) => deferred(&c, format!("{e:#}"), now),
    };
    store.confirmation_done(&c.address, &outcome, Utc::now())?;
    Ok(Some(outcome))
}

/// Renders and sends one confirmation; the link carries `token`. The greeting names nobody.
fn send(
    root: &Path,
    config: &Config,
    key: &Key,
    c: &Confirmation,
    token: &str,
) -> anyhow::Result<Result<String, SendError>> {
    let url = format!("{}/subscribe/confirm/{token}", config.public_base());
    let css = crate::render::load_css(root)?;
    let rendered = crate::render::email::confirmation(config, &url, &css)?;
    let unsubscribe =
        crate::unsubscribe::unsubscribe_url(&config.public_base(), Link::Reader(key, &c.address));
    let one = One {
        to: &c.email,
        name: "",
        unsubscribe_url: &unsubscribe,
        kind: "confirm",
    };
    let rt = tokio::runtime::Handle::current();
    Ok(rt.block_on(transmit_one(root, config, &rendered, one))?)
}

/// Due again after the deliveries' backoff, or given up once the token's lifetime is over.
fn deferred(c: &Confirmation, error: String, now: DateTime<Utc>) -> ConfirmationOutcome {
    let requested = DateTime::parse_from_rfc3339(&c.requested_at).map(|t| t.with_timezone(&Utc));
    if requested.is_ok_and(|t| now - t > TOKEN_LIFETIME) {
        tracing::warn!(address = %c.address, %error, "sign-up confirmation given up after 72 hours");
        return ConfirmationOutcome::Refused(format!("given up after 72 hours: {error}"));
    }
    let wait = Retry::default().backoff(c.attempts + 1);
    let retry_at = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(30));
    tracing::warn!(address = %c.address, %error, ?wait, "sign-up confirmation not sent; retrying");
    ConfirmationOutcome::Deferred { error, retry_at }
}
