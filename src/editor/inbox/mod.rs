//! Post by email: the editors mail their articles to `editor.inbox` and get the receipt (and
//! the proof) back as the answer to their message.
//!
//! The inbox is read like the bounce mailbox ([`crate::mailbox`]: Maildir, IMAP with IDLE,
//! POP3), every `editor.poll`, each message once (remembered in the store by its content hash
//! and the name it had in the mailbox). [`auth::verdict`] decides who wrote it:
//! - **a stranger** (From is not one of `editor.to`): left unread, logged once, never answered
//!   (an answer to a forged sender would be backscatter);
//! - **a forger** (an editor's address, not authenticated): nothing is written, the office is
//!   alerted (`なりすまし`, at most once an hour; no `resolved` follows, nothing clears it), and
//!   the message is marked read so it is not read again;
//! - **an editor**: each `.docx`, `.md` and `.txt` attachment — or the message itself — becomes
//!   a file in `posts/` ([`attachments`]), checked against every limit of `posts/` before it is
//!   written atomically. The receipt of the publish that reads the files answers her message
//!   ([`crate::editor::receipt`]); refused attachments are answered with the problem.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use maud::html;

use crate::config::{Config, MailboxUrl};
use crate::content::IngestOptions;
use crate::mailbox::{content_id, Batch};
use crate::store::{InboxMessage, Store, StoreError, Thread};

pub mod attachments;
pub mod auth;
mod status;
pub use status::status_lines;

/// The environment variable with the inbox's password.
pub const PASSWORD: &str = "TAYORI_INBOX_PASSWORD";
/// A message bigger than this is not downloaded: it is left unread and shown by `status`. Room
/// for a 20 MiB Word file, base64-encoded, and more: a bigger attachment is refused by its
/// own limit, with an answer.
pub const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
/// The `meta` key of the last reading: `<RFC 3339>` or `<RFC 3339> <why it failed>`.
pub const LAST_READ: &str = "inbox_last_read";
/// The alert cause of a message that claims an editor's address without authentication.
pub const FORGED: &str = "forged";
/// A message whose authentication could not be checked now (DNS failed): left unread and
/// never recorded, so the next reading judges it again.
const UNSURE: &str = "unsure";
/// At most one alert of [`FORGED`] an hour.
pub const FORGED_QUIET: TimeDelta = TimeDelta::hours(1);

/// What one reading did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Read {
    /// Messages read for the first time.
    pub new: usize,
    /// Files written into `posts/` (their names).
    pub written: Vec<String>,
    pub refused: usize,
    pub strangers: usize,
    pub forged: usize,
}

/// Why the inbox could not be read or a file not written (the message stays unread).
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("editor inbox {0}")]
    Mailbox(#[from] crate::mailbox::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("editor inbox: writing {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("editor inbox: {0}")]
    Answer(#[from] super::QueueError),
}

/// `editor.inbox`, when set (or why its URL is unusable).
pub fn url(config: &Config) -> Option<Result<MailboxUrl, String>> {
    let inbox = config.editor.as_ref()?.inbox.as_deref()?;
    Some(MailboxUrl::parse(inbox, "editor.inbox"))
}

/// Reads the inbox once: each message not yet read is judged and taken or left.
pub async fn read(
    root: &Path,
    config: &Config,
    store: &mut Store,
    resolver: &auth::Resolver,
) -> Result<Read, InboxError> {
    let Some(Ok(url)) = url(config) else {
        return Ok(Read::default());
    };
    let result = read_batch(root, config, store, resolver, &url).await;
    let now = Utc::now().to_rfc3339();
    let last = match &result {
        Ok(_) => now,
        Err(e) => format!("{now} {e}"),
    };
    store.set_meta(LAST_READ, &last)?;
    // Unreadable for an hour: the office is told (and when it reads again).
    let failed = result.as_ref().err().map(|e| e.to_string());
    super::alert::inbox_read(root, config, store, failed.as_ref());
    result
}

/// What the reading of one batch works with.
struct Ctx<'a> {
    root: &'a Path,
    config: &'a Config,
    store: &'a Store,
    resolver: &'a auth::Resolver,
}

async fn read_batch(
    root: &Path,
    config: &Config,
    store: &mut Store,
    resolver: &auth::Resolver,
    url: &MailboxUrl,
) -> Result<Read, InboxError> {
    let batch = Batch::open(url, PASSWORD, MAX_MESSAGE_BYTES).await?;
    let ctx = Ctx {
        root,
        config,
        store,
        resolver,
    };
    let mut read = Read::default();
    let mut done = Vec::new();
    for (i, m) in batch.messages().iter().enumerate() {
        let outcome = match store.inbox_outcome(&m.seen_as)? {
            Some(o) => o,
            None => match batch.read(i)? {
                Some(bytes) => take(&ctx, &bytes, &m.seen_as, &mut read).await?,
                None => too_big(store, &m.seen_as, m.size)?,
            },
        };
        // A stranger's message, or one too big to read, is left as it came.
        if !matches!(outcome.as_str(), "stranger" | "unreadable" | UNSURE) {
            done.push(i);
        }
    }
    batch.finish(&done, false).await?;
    Ok(read)
}

fn too_big(store: &Store, seen_as: &str, size: u64) -> Result<String, StoreError> {
    let why = format!(
        "too big to read ({} MiB; the limit is {} MiB): left unread",
        size.div_ceil(1 << 20),
        MAX_MESSAGE_BYTES >> 20
    );
    tracing::warn!(message = seen_as, "editor inbox: a message {why}");
    store.record_inbox(
        &[seen_as],
        &InboxMessage {
            message: seen_as.to_string(),
            read_at: Utc::now().to_rfc3339(),
            sender: String::new(),
            subject: String::new(),
            outcome: "unreadable".into(),
            detail: why,
        },
    )?;
    Ok("unreadable".into())
}

/// Reads one message for the first time (unless it is known by its content or Message-ID),
/// judges it and records what came of it; returns the outcome.
async fn take(
    ctx: &Ctx<'_>,
    bytes: &[u8],
    seen_as: &str,
    read: &mut Read,
) -> Result<String, InboxError> {
    let store = ctx.store;
    let hash = content_id(bytes);
    if let Some(outcome) = known(store, &hash, &[seen_as])? {
        return Ok(outcome);
    }
    read.new += 1;
    let Some(message) = mail_parser::MessageParser::default().parse(bytes) else {
        tracing::warn!(
            message = seen_as,
            "editor inbox: not a mail message: left unread"
        );
        let m = record(&hash, "", "", "unreadable", "not a mail message");
        store.record_inbox(&[&hash, seen_as], &m)?;
        return Ok(m.outcome);
    };
    // Servers hand the same message out with other bytes (IMAP and POP3 of one Dovecot differ):
    // its Message-ID knows it too. Someone else's message under her id is read no more than hers.
    let mid = message.message_id().map(|id| format!("mid:<{id}>"));
    if let Some(mid) = &mid {
        if let Some(outcome) = known(store, mid, &[&hash, seen_as])? {
            return Ok(outcome);
        }
    }
    let m = judge(ctx, &message, bytes, &hash, read).await?;
    if m.outcome == UNSURE {
        read.new -= 1;
        return Ok(m.outcome);
    }
    let mut ids = vec![hash.as_str(), seen_as];
    ids.extend(mid.as_deref());
    store.record_inbox(&ids, &m)?;
    Ok(m.outcome)
}

/// The verdict on a message, and what it does: a stranger's is left, a forger's alerts the
/// office, an editor's is posted.
async fn judge(
    ctx: &Ctx<'_>,
    message: &mail_parser::Message<'_>,
    bytes: &[u8],
    hash: &str,
    read: &mut Read,
) -> Result<InboxMessage, InboxError> {
    let subject = crate::content::one_line(message.subject().unwrap_or(""));
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let editor = ctx.config.editor.as_ref();
    let editors = editor.map(|e| e.to.clone()).unwrap_or_default();
    let trusted = editor.and_then(|e| e.trusted_authserv_id.as_deref());
    Ok(
        match auth::verdict(bytes, &editors, trusted, ctx.resolver).await {
            auth::Verdict::Stranger => {
                read.strangers += 1;
                tracing::warn!(from = %from, subject = %subject, "editor inbox: a message not from an editor: left unread, not answered");
                record(hash, &from, &subject, "stranger", "not from an editor")
            }
            auth::Verdict::Unsure(why) => {
                // Not a decision: nothing is recorded, and the next reading judges it again.
                tracing::warn!(from = %from, subject = %subject, "editor inbox: {why}; left unread, read again at the next poll");
                record(hash, &from, &subject, UNSURE, &why)
            }
            auth::Verdict::Forged(why) => {
                read.forged += 1;
                tracing::warn!(from = %from, subject = %subject, "editor inbox: a message claims an editor's address without authentication ({why}): nothing published");
                forged_alert(ctx, &from, &subject, &why)?;
                record(hash, &from, &subject, "forged", &why)
            }
            auth::Verdict::Editor(sender) => {
                let detail = post(ctx, message, &sender, &subject, read)?;
                let outcome = if detail.lines().any(|l| !l.starts_with("refused")) {
                    "taken"
                } else {
                    read.refused += 1;
                    "refused"
                };
                record(hash, &sender, &subject, outcome, &detail)
            }
        },
    )
}

/// What came of the message known as `id`, remembering it under `aliases` too.
fn known(store: &Store, id: &str, aliases: &[&str]) -> Result<Option<String>, StoreError> {
    let Some(m) = store.inbox_message(id)? else {
        return Ok(None);
    };
    store.record_inbox(aliases, &m)?;
    Ok(Some(m.outcome))
}

fn record(hash: &str, sender: &str, subject: &str, outcome: &str, detail: &str) -> InboxMessage {
    InboxMessage {
        message: hash.to_string(),
        read_at: Utc::now().to_rfc3339(),
        sender: sender.to_string(),
        subject: subject.to_string(),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
    }
}

/// The thread her answer joins: her Message-ID and References.
fn thread_of(message: &mail_parser::Message, sender: &str, subject: &str) -> Thread {
    let id = message
        .message_id()
        .map(|id| format!("<{id}>"))
        .unwrap_or_default();
    let refs = message
        .references()
        .as_text_list()
        .map(|l| l.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>())
        .or_else(|| {
            message
                .references()
                .as_text()
                .map(|r| vec![format!("<{r}>")])
        })
        .unwrap_or_default();
    Thread {
        message: id,
        sender: sender.to_string(),
        subject: subject.to_string(),
        refs: refs.join(" "),
        refused: String::new(),
    }
}

/// Writes the files her message offers into `posts/`; answers at once when nothing was
/// written (every attachment refused, or the same content already there). Returns the detail
/// recorded: `written: <file>`, `unchanged: <file>`, `refused: <name>: <why>`, one a line.
fn post(
    ctx: &Ctx<'_>,
    message: &mail_parser::Message,
    sender: &str,
    subject: &str,
    read: &mut Read,
) -> Result<String, InboxError> {
    let Ctx {
        root,
        config,
        store,
        ..
    } = *ctx;
    let now = Utc::now();
    let posts = root.join("posts");
    let today = now
        .with_timezone(&config.tz())
        .format("%Y-%m-%d")
        .to_string();
    let opts = IngestOptions::from_config(config);
    let by_name: std::collections::HashMap<String, String> =
        crate::content::list_post_files(&posts)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                let name = f.file_name()?.to_str()?.to_string();
                Some((crate::content::slug_from_path(&f), name))
            })
            .collect();
    let slug_taken = |slug: &str| slug_file(store, &by_name, slug);
    let target = attachments::Target {
        posts: &posts,
        date: &today,
        opts: &opts,
        slug_taken: &slug_taken,
    };
    let sorted = attachments::sort(message, &target);
    let mut thread = thread_of(message, sender, subject);
    thread.refused = sorted
        .refused
        .iter()
        .map(|(name, why)| format!("{name}\t{why}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut detail = Vec::new();
    let mut unchanged = Vec::new();
    for f in &sorted.files {
        let path = posts.join(&f.name);
        if std::fs::read(&path).is_ok_and(|old| old == f.bytes) {
            detail.push(format!("unchanged: posts/{}", f.name));
            unchanged.push(f.name.clone());
            continue;
        }
        // Remembered first: the publish that reads the file answers her message.
        store.inbox_file_written(&f.name, &thread, now)?;
        crate::files::write_atomic(&path, &f.bytes).map_err(|source| InboxError::Write {
            path: crate::files::display(&path),
            source,
        })?;
        tracing::info!(file = %f.name, from = %sender, "editor inbox: written into posts/");
        detail.push(format!("written: posts/{}", f.name));
        read.written.push(f.name.clone());
    }
    for (name, why) in &sorted.refused {
        tracing::warn!(from = %sender, attachment = %name, "editor inbox: refused: {why}");
        detail.push(format!("refused: {name}: {why}"));
    }
    if detail.iter().all(|d| !d.starts_with("written")) {
        answer_now(
            root,
            config,
            store,
            &thread,
            &sorted.refused,
            &unchanged,
            now,
        )?;
    }
    Ok(detail.join("\n"))
}

/// The file of the post (not deleted) known by `slug`, or of a file in `posts/` whose name
/// gives that slug (`by_name`: slug → file name).
fn slug_file(
    store: &Store,
    by_name: &std::collections::HashMap<String, String>,
    slug: &str,
) -> Option<String> {
    match store.post(slug) {
        Ok(Some(p)) if !p.deleted => Path::new(&p.path)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string),
        _ => by_name.get(slug).cloned(),
    }
}

/// The answer to a message that wrote nothing: each refused attachment with why, each file
/// that was already there unchanged.
fn answer_now(
    root: &Path,
    config: &Config,
    store: &Store,
    thread: &Thread,
    refused: &[(String, String)],
    unchanged: &[String],
    now: DateTime<Utc>,
) -> Result<(), InboxError> {
    let subject = super::re(&thread.subject);
    let mut text = String::from("お送りいただいたメールから、公開するものはありませんでした。\n");
    for (name, why) in refused {
        text.push_str(&format!(
            "\n■ 受け付けられません: {name}\n  {why}\n  → {}\n",
            refusal_advice(why)
        ));
    }
    for f in unchanged {
        text.push_str(&format!(
            "\n■ 変更なし: posts/{f}\n  同じ内容のファイルがすでにあります。\n"
        ));
    }
    let body = html! {
        h1 { "記事の受付" }
        p { "お送りいただいたメールから、公開するものはありませんでした。" }
        @for (name, why) in refused {
            h2 { "受け付けられません: " (name) }
            p { code { (why) } br; "→ " (refusal_advice(why)) }
        }
        @for f in unchanged {
            h2 { "変更なし: posts/" (f) }
            p { "同じ内容のファイルがすでにあります。" }
        }
    };
    let mail = super::Mail {
        kind: super::kind::RECEIPT,
        subject: &subject,
        body,
        text: &text,
    };
    super::queue_reply(root, config, store, mail, thread, true, now)?;
    Ok(())
}

/// What to do about a refused attachment, in plain words.
pub fn refusal_advice(why: &str) -> &'static str {
    if why.contains("too big") {
        "ファイルが大きすぎます。画像を小さくするか、記事を分けてお送りください。"
    } else if why.contains("only .docx") {
        "記事として受け付けるのは Word（.docx）、Markdown（.md）、テキスト（.txt）のファイルです。"
    } else if why.contains("another post already has the address") {
        "同じ名前の記事がすでにあります（ファイル名の日付を除いた部分が記事のアドレスになります）。ファイル名を変えてお送りください。"
    } else if why.contains("neither an attachment") {
        "本文に記事を書くか、記事のファイルを添付してお送りください。"
    } else {
        "ファイルを直して、もう一度メールでお送りください。"
    }
}

/// Raises the alert of a message that claims an editor's address without passing
/// authentication: at most once an hour; nothing clears it, so no resolution follows.
fn forged_alert(ctx: &Ctx<'_>, from: &str, subject: &str, why: &str) -> Result<(), InboxError> {
    let subject: String = subject.chars().take(80).collect();
    let text = format!(
        "編集担当のアドレス（{from}）を名乗るメールが記事の受付用メールボックスに届きましたが、認証を通りませんでした（{why}）。件名「{subject}」。何も公開していません。"
    );
    super::alert::raise_every(
        ctx.root,
        ctx.config,
        ctx.store,
        FORGED,
        &text,
        false,
        FORGED_QUIET,
    )?;
    Ok(())
}
