//! The next issue as it will be sent, worked out without changing anything: for
//! `send --dry-run`, `send --test ADDR` and the server's `/preview`. It decides what is due and
//! waiting by the same rules as publishing and issue making ([`publish::due`],
//! [`Store::waits_for_issue`]), from the files and a read-only look at the store.

use std::path::Path;

use chrono::Utc;

use super::DeliverError;
use crate::config::Config;
use crate::content::IngestOptions;
use crate::publish;
use crate::render::{self, email::Rendered, Entry};
use crate::store::Store;

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
    let opts = IngestOptions::from_config(config).with_media_cache(root, false);
    let scan = publish::scan(root, &opts).map_err(publish::BuildError::from)?;
    let mut entries = Vec::new();
    for post in scan.posts {
        let Some(published) = publish::due(&post, Some(&store), now)? else {
            continue;
        };
        if store.waits_for_issue(&post.slug)? {
            let updated = store.post(&post.slug)?.map_or(published, |r| r.updated_at);
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
    let rendered = render::email::render(
        config,
        &refs,
        &render::load_css(root).map_err(publish::BuildError::Css)?,
    )?;
    Ok(Next::New {
        rendered,
        titles: entries.iter().map(|e| e.post.title.clone()).collect(),
    })
}

/// The made-up reader a preview is addressed to (email, name): no subscriber's name, address
/// or working unsubscribe link is ever shown on a page.
pub const SAMPLE_READER: (&str, &str) = ("reader@example.invalid", "見本 太郎");
