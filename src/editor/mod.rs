//! The office: tayori writes to the editors (`editor.to`) about the newsletter itself — a
//! receipt for the posts it read, a proof before each issue, a report after it, an alert when
//! something stopped and its resolution. One path for all of it: a mail is rendered (maud, the
//! issue's stylesheet inlined), queued in the store ([`Store::queue_editor_mail`]) and sent by
//! [`mail::run`] — DKIM-signed, From `sender.from`, through the issues' SMTP server or into
//! `outbox/` — never to a subscriber, never part of an issue, never in its figures. A mail the
//! relay would not take stays queued and is sent once it does, once.

use std::path::Path;

use chrono::{DateTime, Utc};
use maud::Markup;

use crate::config::Config;
use crate::store::{Store, StoreError};

pub mod alert;
pub mod inbox;
pub mod mail;
pub mod proof;
pub mod receipt;
pub mod report;

/// `X-Tayori-Kind` of each editor mail.
pub mod kind {
    pub const RECEIPT: &str = "receipt";
    pub const PROOF: &str = "proof";
    pub const REPORT: &str = "report";
    pub const ALERT: &str = "alert";
    pub const RESOLVED: &str = "resolved";
    /// Not a mail: an alert POSTed to `editor.alert_webhook` (JSON in `text`).
    pub const WEBHOOK: &str = "webhook";
}

/// Why an editor mail could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("editor mail: {0}")]
    Render(#[from] crate::render::email::RenderError),
    #[error("editor mail stylesheet: {0}")]
    Css(std::io::Error),
}

/// Whether the office is configured (`editor.to`).
pub fn enabled(config: &Config) -> bool {
    config.editor.as_ref().is_some_and(|e| !e.to.is_empty())
}

/// The stylesheet of editor mail: the issues' (`templates/email.css`), then
/// `templates/office.css` when the folder has one.
pub fn css(root: &Path) -> std::io::Result<String> {
    let mut css = crate::render::load_css(root)?;
    let extra = root.join("templates").join("office.css");
    match std::fs::read_to_string(&extra) {
        Ok(more) => css.push_str(&more),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", crate::files::display(&extra).display()),
            ))
        }
    }
    Ok(css)
}

/// One editor mail before rendering.
pub struct Mail<'a> {
    /// `X-Tayori-Kind` (see [`kind`]).
    pub kind: &'a str,
    pub subject: &'a str,
    /// The HTML body, laid out in the issues' look by [`queue`].
    pub body: Markup,
    /// The text part.
    pub text: &'a str,
}

/// Renders and queues one editor mail (nothing when the office is not configured).
pub fn queue(
    root: &Path,
    config: &Config,
    store: &Store,
    mail: Mail<'_>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    queue_as(root, config, store, mail, None, now)
}

/// [`queue`] for an answer to one editor's message (`In-Reply-To`, `References`, `Re:`): To
/// her alone with `to_sender`, else to every editor.
pub fn queue_reply(
    root: &Path,
    config: &Config,
    store: &Store,
    mail: Mail<'_>,
    thread: &crate::store::Thread,
    to_sender: bool,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    queue_as(root, config, store, mail, Some((thread, to_sender)), now)
}

fn queue_as(
    root: &Path,
    config: &Config,
    store: &Store,
    mail: Mail<'_>,
    reply: Option<(&crate::store::Thread, bool)>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    let Mail {
        kind,
        subject,
        body,
        text,
    } = mail;
    if !enabled(config) {
        return Ok(());
    }
    let css = css(root).map_err(QueueError::Css)?;
    let html = crate::render::email::office(config, subject, body, &css)?;
    let text = format!(
        "{text}\n\n--\nこのメールは tayori が「{}」の編集担当にお送りしています。読者には届きません。\n",
        config.site.title
    );
    match reply {
        Some((thread, to_sender)) => {
            let mut thread = thread.clone();
            if !to_sender {
                thread.sender.clear();
            }
            store.queue_editor_reply(kind, subject, &html, &text, &thread, now)?;
        }
        None => {
            store.queue_editor_mail(kind, subject, &html, &text, now)?;
        }
    }
    tracing::info!(kind, subject, "editor mail queued");
    Ok(())
}

/// `Re: <subject>` for an answer (once, however often it was answered).
pub fn re(subject: &str) -> String {
    let s = crate::content::one_line(subject);
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("re:") || s.starts_with("Re：") {
        s.to_string()
    } else if s.is_empty() {
        "Re: （件名なし）".into()
    } else {
        format!("Re: {s}")
    }
}

/// After `tayori send` sent by itself: the report, or the alert of a run that stopped early,
/// then one pass over the editor mail queue.
pub async fn after_send(
    root: &Path,
    config: &Config,
    result: &Result<crate::deliver::Summary, crate::deliver::DeliverError>,
) {
    use crate::deliver::DeliverError;
    if !enabled(config) {
        return;
    }
    let told = Store::open(root).map_err(anyhow::Error::from).and_then(|store| {
        match result {
            Ok(s) if s.issue.is_some() => {
                report::after_issue(root, config, &store, s, None)?;
                alert::clear_now(root, config, &store, alert::SMTP)?;
            }
            Ok(_) | Err(DeliverError::Gated(_)) => {}
            Err(e) => {
                let text = format!("号の配信が止まりました。未送信の分は残っていて、直れば続きを送ります。原因: {e}");
                alert::raise_now(root, config, &store, alert::SMTP, &text, true)?;
                report::after_stop(root, config, &store, &e.to_string())?;
            }
        }
        Ok(())
    });
    if let Err(e) = told {
        tracing::error!("telling the office: {e:#}");
    }
    mail::flush_once(root, config).await;
}

/// What holds the next issue, in one line for `status` (`None`: nothing holds it).
pub fn gate_line(store: &Store, approval: bool) -> Result<Option<String>, StoreError> {
    Ok(match store.gate(approval)? {
        crate::store::Gate::Open => None,
        crate::store::Gate::Held => Some(
            "next issue: held (tayori hold): its ticks pass and nothing goes out; `tayori release` lets it go".into(),
        ),
        crate::store::Gate::AwaitingApproval => Some(
            "next issue: awaiting an editor's approval (editor.approval): its ticks pass; approve it with the proof's link or `tayori release`".into(),
        ),
    })
}

/// The same, in Japanese for the `/preview` page.
pub fn gate_note(store: &Store, approval: bool) -> Option<&'static str> {
    match store.gate(approval).ok()? {
        crate::store::Gate::Open => None,
        crate::store::Gate::Held => Some("この号は保留中です（tayori hold）。配信予定の時刻が来ても送られません。tayori release で再開します。"),
        crate::store::Gate::AwaitingApproval => Some("この号は編集担当の承認待ちです（editor.approval）。校正メールの「承認」リンクか tayori release で承認するまで送られません。"),
    }
}

/// A time as the office reads it: `2026年12月1日(火) 09:00`, in Japan time (the site's zone).
pub fn japan_time(config: &Config, at: DateTime<Utc>) -> String {
    use chrono::Datelike;
    let t = at.with_timezone(&config.tz());
    let wd =
        ["月", "火", "水", "木", "金", "土", "日"][t.weekday().num_days_from_monday() as usize];
    format!("{}({wd}) {}", t.format("%Y年%-m月%-d日"), t.format("%H:%M"))
}

/// What `hold` / `release` say, done or not.
pub fn gate_message(kind: &str, done: bool) -> String {
    match (kind, done) {
        (_, false) => "no issue is pending: nothing to hold or release".into(),
        ("hold", true) => "the pending issue is held: its ticks pass and nothing goes out until `tayori release`".into(),
        ("release", true) => "the pending issue is released (and approved): it goes out at its tick, or now if its tick passed while it was held".into(),
        _ => "done".into(),
    }
}
