//! The proof (校正): `editor.review` before the tick that will send the pending issue — at once
//! when the issue becomes pending later than that — the office gets the issue exactly as
//! subscribers will (subject `【校正】…`, HTML and text, addressed to the sample reader), with a
//! hold link and, with `editor.approval`, an approve link under `public_url`. The links' tokens
//! are random (the OS's generator), stored hashed and bound to the version of the pending issue
//! they were made for: when one of its posts changes, the version changes, a new proof goes out
//! and the old links stop working.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use maud::html;

use super::kind;
use crate::config::Config;
use crate::config::Schedule;
use crate::deliver::next_issue::{self, Next, SAMPLE_READER};
use crate::render::email::personalize;
use crate::store::{signups::digest, Store};

/// The `meta` key of the version the last proof was sent for.
const PROOF_VERSION: &str = "editor_proof";

/// Sends the proof of the pending issue if it is due and this version has none yet.
pub fn check(
    root: &Path,
    config: &Config,
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(editor) = config.editor.as_ref().filter(|_| super::enabled(config)) else {
        return Ok(());
    };
    let review = editor.review_before();
    if review.is_zero() {
        return Ok(());
    }
    let Some((version, _)) = store.pending_version()? else {
        return Ok(());
    };
    if store.meta(PROOF_VERSION)?.as_deref() == Some(version.as_str()) {
        return Ok(());
    }
    let calendar = crate::calendar::Calendar::of(config);
    let Some(tick) = calendar
        .next_sending_tick(schedule, &now.with_timezone(&config.tz()))
        .0
    else {
        return Ok(());
    };
    let tick = tick.with_timezone(&Utc);
    if tick - chrono::TimeDelta::from_std(review)? > now {
        return Ok(());
    }
    let Next::New { rendered, .. } = next_issue::next_issue(root, config)? else {
        return Ok(());
    };
    let hold = token(store, "hold", &version, now)?;
    let approve = editor
        .approval
        .then(|| token(store, "approve", &version, now))
        .transpose()?;
    let base = config.public_base();
    let hold_url = format!("{base}/editor/hold/{hold}");
    let approve_url = approve.map(|t| format!("{base}/editor/approve/{t}"));
    let (_, name) = SAMPLE_READER;
    let unsubscribe = format!("{base}/unsubscribe/preview");
    let issue_html = personalize(&rendered.html, name, &unsubscribe, true);
    let issue_text = personalize(&rendered.text, name, &unsubscribe, false);
    let when = super::japan_time(config, tick);
    let readers = super::receipt::readers(root, store)?;
    let banner = html! {
        div style="max-width: 600px; margin: 0 auto; padding: 16px; background-color: #fff6d6; border: 2px solid #b8860b; color: #222222; font-family: sans-serif; font-size: 15px; line-height: 1.7;" {
            p style="margin: 0 0 8px 0; font-weight: bold;" { "【校正】次号の確認用です（読者にはまだ届いていません）" }
            p style="margin: 0 0 8px 0;" { "この号は " (when) " の配信で " (readers) " 人の読者にお送りします。下は読者に届くとおりの内容です（宛名は見本です）。" }
            @if let Some(url) = &approve_url {
                p style="margin: 0 0 8px 0;" { "承認が必要な設定です。内容がよければ承認してください。承認するまで配信されません: " a href=(url) style="color: #6b3a0f !important;" { "この号を承認する" } }
            }
            p style="margin: 0;" { "配信を止めたいときは: " a href=(hold_url) style="color: #6b3a0f !important;" { "この号を保留にする" } "（記事を直すと新しい校正が届き、このメールのリンクは無効になります）" }
        }
    };
    let html = insert_after_body(&issue_html, &banner.into_string());
    let mut text = format!("【校正】次号の確認用です（読者にはまだ届いていません）\n\nこの号は {when} の配信で {readers} 人の読者にお送りします。下は読者に届くとおりの内容です（宛名は見本です）。\n\n");
    if let Some(url) = &approve_url {
        text.push_str(&format!(
            "承認するまで配信されません。内容がよければ承認してください:\n{url}\n\n"
        ));
    }
    text.push_str(&format!("配信を止めたいときは（保留）:\n{hold_url}\n\n記事を直すと新しい校正が届き、このメールのリンクは無効になります。\n\n----------\n\n{issue_text}"));
    let subject = format!("【校正】{}", rendered.subject);
    // An issue made of posts an editor mailed in: the proof joins the thread of her mail.
    match mailed_thread(store)? {
        Some(mut t) => {
            // To every editor: the proof is the office's.
            t.sender.clear();
            store.queue_editor_reply(kind::PROOF, &subject, &html, &text, &t, now)?
        }
        None => store.queue_editor_mail(kind::PROOF, &subject, &html, &text, now)?,
    };
    store.set_meta(PROOF_VERSION, &version)?;
    tracing::info!(%version, "proof queued for the editors");
    Ok(())
}

/// The latest mail an editor sent whose files are among the pending issue's posts.
fn mailed_thread(store: &Store) -> anyhow::Result<Option<crate::store::Thread>> {
    let Some((_, slugs)) = store.pending_version()? else {
        return Ok(None);
    };
    let mut files = Vec::new();
    for slug in slugs {
        if let Some(p) = store.post(&slug)? {
            files.extend(
                Path::new(&p.path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string),
            );
        }
    }
    Ok(store.inbox_thread_of_any(&files)?)
}

/// A new random token for `action` on `version`; only its hash is stored.
fn token(store: &Store, action: &str, version: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let token = B64.encode(raw);
    store.add_editor_token(&digest(&token), action, version, now)?;
    Ok(token)
}

fn insert_after_body(html: &str, banner: &str) -> String {
    match html
        .find("<body")
        .and_then(|at| html[at..].find('>').map(|end| at + end + 1))
    {
        Some(at) => format!("{}{banner}{}", &html[..at], &html[at..]),
        None => format!("{banner}{html}"),
    }
}
