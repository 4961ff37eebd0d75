//! The next issue as it will be sent, worked out without changing anything: for
//! `send --dry-run`, `send --test ADDR` and the server's `/preview`.

use std::path::Path;
use std::time::SystemTime;

use chrono::Utc;

use super::{smtp, DeliverError, SendError};
use crate::config::Config;
use crate::content::IngestOptions;
use crate::message::{sender_domain, Recipient, Template};
use crate::publish;
use crate::render::{self, email::Rendered, Entry};
use crate::store::Store;
use crate::subscribers;

/// What the next `send` (or tick) would do.
pub enum Next {
    /// No store yet: the posts there now become the back catalogue; nothing is sent.
    FirstStart,
    /// Nothing published since the last issue.
    Nothing,
    /// An issue a previous run left unfinished, with how many messages are left.
    Resume {
        issue: i64,
        rendered: Rendered,
        left: u64,
    },
    /// A new issue of these posts.
    New {
        rendered: Rendered,
        titles: Vec<String>,
    },
}

/// Works out the next issue from the files and a read-only look at the store.
pub fn next_issue(root: &Path, config: &Config) -> Result<Next, DeliverError> {
    let Some(store) = Store::open_read_only(root)? else {
        return Ok(Next::FirstStart);
    };
    if let Some(issue) = store.unfinished_issue()? {
        let left = store.count_in(issue.id, "pending")? + store.count_in(issue.id, "sending")?;
        let rendered = Rendered {
            subject: issue.subject,
            preheader: String::new(),
            html: issue.html,
            text: issue.text,
        };
        return Ok(Next::Resume {
            issue: issue.id,
            rendered,
            left,
        });
    }
    let now = Utc::now();
    let scan = publish::scan(root, &IngestOptions::from_config(config))
        .map_err(publish::BuildError::from)?;
    let mut entries = Vec::new();
    for post in scan.posts.into_iter().filter(|p| !p.draft) {
        let published = publish::published_time(&post, Some(&store), now);
        if published > now {
            continue;
        }
        let (pending, updated) = match store.post(&post.slug)? {
            None => (true, published),
            Some(r) => (r.announced == "pending" && !r.deleted, r.updated_at),
        };
        if pending {
            entries.push(Entry {
                post,
                published,
                updated,
            });
        }
    }
    if entries.is_empty() {
        return Ok(Next::Nothing);
    }
    let refs: Vec<&Entry> = entries.iter().collect();
    let rendered = render::email::render(config, &refs, &render::load_css(root))?;
    Ok(Next::New {
        rendered,
        titles: entries.iter().map(|e| e.post.title.clone()).collect(),
    })
}

/// The made-up reader a preview is addressed to (email, name): no subscriber's name, address
/// or working unsubscribe link is ever shown on a page.
pub const SAMPLE_READER: (&str, &str) = ("reader@example.invalid", "見本 太郎");

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
        template = template
            .with_dkim(crate::message::dkim::Signer::load(root, d).map_err(DeliverError::Config)?);
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
            render::write_atomic(&path, message.as_bytes())
                .map_err(|e| DeliverError::Config(e.to_string()))?;
            Ok(publish::display(&path).display().to_string())
        }
        Some(s) => {
            let target = smtp::Target::parse(&s.url, &domain).map_err(DeliverError::Config)?;
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
    DeliverError::Config(format!("test message not sent: {e}"))
}
