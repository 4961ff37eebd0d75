//! One message to one address, outside the ledger: `send --test ADDR` and the sign-up
//! confirmation and welcome emails. Same message builder, DKIM and transport (SMTP or
//! `outbox/`) as issues.

use std::path::Path;
use std::time::SystemTime;

use super::{smtp, DeliverError, SendError};
use crate::config::Config;
use crate::files;
use crate::message::{sender_domain, Recipient, Template};
use crate::render::email::Rendered;
use crate::subscribers;
use crate::unsubscribe::Link;

/// Who a single message goes to.
#[derive(Debug, Clone, Copy)]
pub struct One<'a> {
    pub to: &'a str,
    pub name: &'a str,
    pub unsubscribe_url: &'a str,
    /// What it is (`test`, `confirm`, `welcome`): the Message-ID's and outbox file's prefix.
    pub kind: &'a str,
}

/// `send --test ADDR`: the next issue to one address, through the configured transport,
/// without touching the ledger. Returns where it went.
pub async fn send_test(
    root: &Path,
    config: &Config,
    address: &str,
    rendered: &Rendered,
) -> Result<String, DeliverError> {
    let mut name = String::new();
    let key = subscribers::key(address);
    subscribers::each(&root.join("subscribers"), |s| {
        if name.is_empty() && subscribers::key(s.email) == key {
            name = s.name.to_string();
        }
    });
    let unsubscribe =
        crate::unsubscribe::unsubscribe_url(&config.public_base(), Link::Sample("test"));
    let one = One {
        to: address,
        name: &name,
        unsubscribe_url: &unsubscribe,
        kind: "test",
    };
    send_one(root, config, rendered, one).await
}

/// Sends `rendered` to one address; returns where it went.
pub async fn send_one(
    root: &Path,
    config: &Config,
    rendered: &Rendered,
    one: One<'_>,
) -> Result<String, DeliverError> {
    transmit_one(root, config, rendered, one)
        .await?
        .map_err(send_error)
}

/// [`send_one`], telling how the SMTP exchange failed (the outer error is ours: the message,
/// DKIM, `outbox/`); `Ok(Err(SendError::Permanent))` is a 5xx for this address.
pub async fn transmit_one(
    root: &Path,
    config: &Config,
    rendered: &Rendered,
    one: One<'_>,
) -> Result<Result<String, SendError>, DeliverError> {
    let mut template = Template::new(config, rendered, SystemTime::now())?;
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        template = template.with_dkim(crate::message::dkim::Signer::load(root, d)?);
    }
    let domain = sender_domain(config);
    let message = template.render(&Recipient {
        email: one.to,
        name: one.name,
        unsubscribe_url: one.unsubscribe_url,
        message_id: format!("<{}.{:016x}@{domain}>", one.kind, fastrand::u64(..)),
    })?;
    match &config.smtp {
        None => {
            let key = subscribers::key(one.to);
            let path = root.join("outbox").join(format!(
                "{}-{}.eml",
                one.kind,
                key.replace(['/', '\\'], "_")
            ));
            files::write_private(&path, message.as_bytes())
                .map_err(|e| DeliverError::One(format!("{}: {e}", path.display())))?;
            Ok(Ok(files::display(&path).display().to_string()))
        }
        Some(s) => {
            let url = s.url.value().map_err(DeliverError::SmtpUrl)?;
            let target = smtp::Target::new(url, &domain);
            let timeout = super::Retry::default().timeout;
            let mut conn = match smtp::Connection::open(&target, timeout).await {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let reply = match conn
                .send(&template.envelope_from, one.to, &message, None)
                .await
            {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            conn.close().await;
            Ok(Ok(format!("{}:{} ({reply})", target.host, target.port)))
        }
    }
}

fn send_error(e: SendError) -> DeliverError {
    DeliverError::One(e.to_string())
}
