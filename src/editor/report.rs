//! The report (配信レポート) when an issue finishes or stops: how many were sent, each failed
//! address with the server's reply, how many were deferred, the bounces and complaints since
//! the last report, unsubscribes, new sign-ups, the feed readers' count and the cross-posts of
//! the issue's posts. An issue whose bounce rate is above 2 % or that drew a complaint raises
//! an alert.

use std::path::Path;

use chrono::Utc;
use maud::html;

use super::kind;
use crate::config::Config;
use crate::deliver::Summary;
use crate::store::Store;

const LAST_REPORT: &str = "editor_last_report";

/// The report of an issue that stopped early (`why`), once per issue: the daemon tries it
/// again by itself, and each try that stops is not another report.
pub fn after_stop(root: &Path, config: &Config, store: &Store, why: &str) -> anyhow::Result<()> {
    let Some(issue) = store.unfinished_issue()?.filter(|_| super::enabled(config)) else {
        return Ok(());
    };
    let key = format!("stopped:{}", issue.id);
    if store.noted(&key)?.is_some() {
        return Ok(());
    }
    store.note(&key, "reported", Utc::now())?;
    let summary = Summary {
        issue: Some(issue.id),
        subject: issue.subject.clone(),
        sent: store.count_in(issue.id, "sent")?,
        failed: store.count_in(issue.id, "failed")?,
        deferred: store.count_in(issue.id, "pending")? + store.count_in(issue.id, "sending")?,
        ..Summary::default()
    };
    after_issue(root, config, store, &summary, Some(why))
}

/// Queues the report of `summary`'s issue (`stopped`: why it stopped early).
pub fn after_issue(
    root: &Path,
    config: &Config,
    store: &Store,
    summary: &Summary,
    stopped: Option<&str>,
) -> anyhow::Result<()> {
    let Some(id) = summary.issue.filter(|_| super::enabled(config)) else {
        return Ok(());
    };
    let now = Utc::now();
    let since = store.meta(LAST_REPORT)?.unwrap_or_default();
    let slugs = store.issue(id)?.map(|i| i.slugs).unwrap_or_default();
    let figures = store.figures_since(&since, &slugs)?;
    let count = |complaint: bool| -> i64 {
        figures
            .bounces
            .iter()
            .filter(|(c, _)| (c == "complaint") == complaint)
            .map(|(_, n)| n)
            .sum()
    };
    let facts = Facts {
        id,
        summary,
        stopped,
        failed: store.deliveries_in(id, "failed")?,
        readers: crate::readers::total(store).unwrap_or(0),
        bounced: count(false),
        complaints: count(true),
        figures: &figures,
    };
    let (subject, body, text) = render(&facts);
    let (bounced, complaints) = (facts.bounced, facts.complaints);
    super::queue(
        root,
        config,
        store,
        super::Mail {
            kind: kind::REPORT,
            subject: &subject,
            body,
            text: &text,
        },
        now,
    )?;
    store.set_meta(LAST_REPORT, &now.to_rfc3339())?;
    // Bounce rate above 2 % of those sent, or any complaint: the office is told.
    if summary.sent > 0 && (bounced * 100 > 2 * summary.sent as i64 || complaints > 0) {
        let text = format!("第{id}号で配信不能が {bounced} 件（送信 {} 件）、迷惑メール報告が {complaints} 件ありました。", summary.sent);
        super::alert::raise_now(root, config, store, super::alert::BOUNCES, &text, false)?;
    }
    Ok(())
}

/// What a report says.
struct Facts<'a> {
    id: i64,
    summary: &'a Summary,
    stopped: Option<&'a str>,
    /// Failed deliveries: (address, attempts, the server's reply).
    failed: Vec<(String, i64, Option<String>)>,
    readers: u64,
    bounced: i64,
    complaints: i64,
    figures: &'a crate::store::Figures,
}

fn render(facts: &Facts<'_>) -> (String, maud::Markup, String) {
    let Facts {
        id,
        summary,
        stopped,
        failed,
        readers,
        bounced,
        complaints,
        figures: f,
    } = facts;
    let (id, stopped, failed) = (*id, *stopped, failed.as_slice());
    let subject = match stopped {
        None => format!(
            "【配信レポート】第{id}号「{}」を {} 人にお送りしました",
            summary.subject, summary.sent
        ),
        Some(_) => format!(
            "【配信レポート】第{id}号「{}」の配信が途中で止まりました",
            summary.subject
        ),
    };
    let mut text = format!("第{id}号「{}」\n\n", summary.subject);
    if let Some(why) = stopped {
        text.push_str(&format!("配信が途中で止まりました: {why}\n未送信の分は失われず、原因が直れば自動で続きを送ります。\n\n"));
    }
    text.push_str(&format!(
        "送信済み: {} 人\n送れなかった宛先: {} 件\n後で再送する宛先: {} 件\n",
        summary.sent, summary.failed, summary.deferred
    ));
    for (email, _, reply) in failed {
        text.push_str(&format!("  {email}: {}\n", reply.as_deref().unwrap_or("")));
    }
    text.push_str(&format!("\n前回のレポート以降:\n  配信不能（バウンス）: {bounced} 件\n  迷惑メール報告: {complaints} 件\n  配信停止: {} 人\n  新規登録: {} 人\n  フィード購読者（推定）: {readers} 人\n", f.unsubscribes, f.signups));
    for (slug, event, state, status) in &f.crossposts {
        text.push_str(&format!(
            "  ブログ転載 {slug} ({event}): {state} {}\n",
            status.as_deref().unwrap_or("")
        ));
    }
    let body = html! {
        h1 { "配信レポート: 第" (id) "号" }
        p { "「" (summary.subject) "」" }
        @if let Some(why) = stopped {
            p { strong { "配信が途中で止まりました: " } (why) br; "未送信の分は失われず、原因が直れば自動で続きを送ります。" }
        }
        ul {
            li { "送信済み: " (summary.sent) " 人" }
            li { "送れなかった宛先: " (summary.failed) " 件" }
            li { "後で再送する宛先: " (summary.deferred) " 件" }
        }
        @if !failed.is_empty() {
            h2 { "送れなかった宛先と相手サーバーの返答" }
            ul { @for (email, _, reply) in failed { li { (email) ": " (reply.as_deref().unwrap_or("")) } } }
        }
        h2 { "前回のレポート以降" }
        ul {
            li { "配信不能（バウンス）: " (bounced) " 件" }
            li { "迷惑メール報告: " (complaints) " 件" }
            li { "配信停止: " (f.unsubscribes) " 人" }
            li { "新規登録: " (f.signups) " 人" }
            li { "フィード購読者（推定）: " (readers) " 人" }
        }
        @if !f.crossposts.is_empty() {
            h2 { "ブログへの転載" }
            ul { @for (slug, event, state, status) in &f.crossposts { li { (slug) "（" (event) "）: " (state) " " (status.as_deref().unwrap_or("")) } } }
        }
    };
    (subject, body, text)
}
