//! `send --test ADDR`: the next issue to one address through the configured transport, the
//! ledger untouched.

use std::path::Path;
use std::time::SystemTime;

use super::{smtp, DeliverError, SendError};
use crate::config::Config;
use crate::files;
use crate::message::{sender_domain, Recipient, Template};
use crate::render::email::Rendered;
use crate::subscribers;

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
    let mut template = Template::new(config, rendered, SystemTime::now())?;
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        template = template.with_dkim(crate::message::dkim::Signer::load(root, d)?);
    }
    let domain = sender_domain(config);
    let unsubscribe = format!("{}/unsubscribe/test", config.public_base());
    let message = template.render(&Recipient {
        email: address,
        name: &name,
        unsubscribe_url: &unsubscribe,
        message_id: format!("<test.{:016x}@{domain}>", fastrand::u64(..)),
    })?;
    match &config.smtp {
        None => {
            let path = root
                .join("outbox")
                .join(format!("test-{}.eml", key.replace(['/', '\\'], "_")));
            files::write_atomic(&path, message.as_bytes())
                .map_err(|e| DeliverError::Test(format!("{}: {e}", path.display())))?;
            Ok(files::display(&path).display().to_string())
        }
        Some(s) => {
            let target = smtp::Target::parse(&s.url, &domain)?;
            let timeout = super::Retry::default().timeout;
            let mut conn = smtp::Connection::open(&target, timeout)
                .await
                .map_err(send_error)?;
            let reply = conn
                .send(&template.envelope_from, address, &message)
                .await
                .map_err(send_error)?;
            conn.close().await;
            Ok(format!("{}:{} ({reply})", target.host, target.port))
        }
    }
}

fn send_error(e: SendError) -> DeliverError {
    DeliverError::Test(e.to_string())
}
