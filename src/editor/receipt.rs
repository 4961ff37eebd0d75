//! The receipt (受付): after each publish, one mail telling the office what tayori made of the
//! files it read — each post published or updated with its title, web address and when it goes
//! out (the next tick that sends, in Japan time, to how many readers), each post waiting for
//! its `date`, and each file refused with its problems as `file:line: message` and what to do.
//! The back catalogue of a first start is one line. What was told is remembered in the store,
//! so a file refused again without change is not told again.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use maud::html;
use sha2::{Digest, Sha256};

use super::kind;
use crate::config::Config;
use crate::publish::Report;
use crate::store::Store;

/// One line of the receipt.
enum Line {
    Published {
        /// The post's file, as `posts/` names it.
        source: std::path::PathBuf,
        title: String,
        url: String,
        updated: bool,
        when: String,
    },
    Scheduled {
        slug: String,
        at: String,
    },
    Refused {
        file: String,
        problems: Vec<String>,
    },
    BackCatalogue(usize),
    /// An attachment of an editor's mail that was not written, and why.
    RefusedAttachment {
        name: String,
        why: String,
    },
}

/// Tells the office what the publish that made `report` did, in one mail (nothing when there
/// is nothing new to tell).
pub fn after_publish(
    root: &Path,
    config: &Config,
    store: &Store,
    report: &Report,
    now: DateTime<Utc>,
) -> Result<(), super::QueueError> {
    if !super::enabled(config) {
        return Ok(());
    }
    let mut lines = Vec::new();
    let mut back = 0;
    let going = when_it_goes(root, config, store, now)?;
    for slug in report.new.iter().chain(&report.updated) {
        let Some(record) = store.post(slug)? else {
            continue;
        };
        let updated = report.updated.contains(slug);
        if record.announced == "back_catalogue" && !updated {
            back += 1;
            continue;
        }
        let Some(e) = report.entries.iter().find(|e| &e.post.slug == slug) else {
            continue;
        };
        let when = match record.announced.as_str() {
            "pending" => going.clone(),
            "back_catalogue" => "過去記事の更新です。Web とフィードに反映しました（メールではお送りしません）。".to_string(),
            _ => "この記事はすでにメールでお送り済みです。更新は Web とフィードに反映しました（メールの再送はしません）。".to_string(),
        };
        lines.push(Line::Published {
            source: e.post.source.clone(),
            title: e.post.title.clone(),
            url: config.post_url(slug),
            updated,
            when,
        });
        store.unnote(&format!("scheduled:{slug}"))?;
    }
    if back > 0 {
        lines.push(Line::BackCatalogue(back));
    }
    for (slug, at) in &report.scheduled {
        let key = format!("scheduled:{slug}");
        let digest = at.to_rfc3339();
        if store.noted(&key)?.as_deref() != Some(digest.as_str()) {
            store.note(&key, &digest, now)?;
            lines.push(Line::Scheduled {
                slug: slug.clone(),
                at: super::japan_time(config, at.with_timezone(&Utc)),
            });
        }
    }
    refused(root, store, report, now, &mut lines)?;
    let lines = answer_mailed(root, config, store, lines, now)?;
    if lines.is_empty() {
        return Ok(());
    }
    let (subject, body, text) = render(config, &lines, INTRO);
    super::queue(
        root,
        config,
        store,
        super::Mail {
            kind: kind::RECEIPT,
            subject: &subject,
            body,
            text: &text,
        },
        now,
    )
}

const INTRO: &str = "tayori が posts/ のファイルを読み込みました。";
const INTRO_MAILED: &str = "メールでお送りいただいた記事を tayori が読み込みました。";

/// The lines about files written from an editor's mail go to her, as the answer to that mail
/// (with the attachments it had that were refused); the other lines are returned for the
/// receipt to every editor.
fn answer_mailed(
    root: &Path,
    config: &Config,
    store: &Store,
    lines: Vec<Line>,
    now: DateTime<Utc>,
) -> Result<Vec<Line>, super::QueueError> {
    let posts = std::fs::canonicalize(root.join("posts")).unwrap_or_else(|_| root.join("posts"));
    let mut rest = Vec::new();
    let mut threads: BTreeMap<(String, String), Answer> = BTreeMap::new();
    for line in lines {
        let file = match &line {
            Line::Published { source, .. } => Some(source.clone()),
            Line::Refused { file, .. } => Some(root.join(file)),
            _ => None,
        }
        .and_then(|f| in_posts(&posts, &f));
        let thread = match &file {
            Some(f) => store.inbox_thread(f)?,
            None => None,
        };
        match (thread, file) {
            (Some(t), Some(f)) => {
                let key = (t.message.clone(), t.sender.clone());
                let entry = threads.entry(key).or_insert_with(|| Answer {
                    thread: t,
                    files: Vec::new(),
                    lines: Vec::new(),
                });
                entry.files.push(f);
                entry.lines.push(line);
            }
            _ => rest.push(line),
        }
    }
    for Answer {
        thread,
        files,
        mut lines,
    } in threads.into_values()
    {
        for refused in thread.refused.lines() {
            let (name, why) = refused.split_once('\t').unwrap_or((refused, ""));
            lines.push(Line::RefusedAttachment {
                name: name.to_string(),
                why: why.to_string(),
            });
        }
        let (_, body, text) = render(config, &lines, INTRO_MAILED);
        let subject = super::re(&thread.subject);
        let mail = super::Mail {
            kind: kind::RECEIPT,
            subject: &subject,
            body,
            text: &text,
        };
        super::queue_reply(root, config, store, mail, &thread, true, now)?;
        for f in files {
            store.inbox_answered(&f)?;
        }
    }
    Ok(rest)
}

/// The lines that answer one editor's mail, and the files they are about.
struct Answer {
    thread: crate::store::Thread,
    files: Vec<String>,
    lines: Vec<Line>,
}

/// The name of `file` when it lies directly in `posts/` (where mailed files are written).
fn in_posts(posts: &Path, file: &Path) -> Option<String> {
    let parent = std::fs::canonicalize(file.parent()?).ok()?;
    (parent == posts)
        .then(|| file.file_name()?.to_str().map(str::to_string))
        .flatten()
}

/// The refused files, each told once per version of its problems and content; a file good
/// again is forgotten, so that a later refusal is told anew.
fn refused(
    root: &Path,
    store: &Store,
    report: &Report,
    now: DateTime<Utc>,
    lines: &mut Vec<Line>,
) -> Result<(), crate::store::StoreError> {
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    for p in &report.problems {
        // As the office names it: `posts/broken.md`, not the server's full path.
        let path = std::fs::canonicalize(&p.path).unwrap_or_else(|_| p.path.clone());
        let file = path
            .strip_prefix(&root)
            .unwrap_or(&p.path)
            .display()
            .to_string();
        let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
        by_file
            .entry(file.clone())
            .or_default()
            .push(format!("{file}{line}: {}", p.message));
    }
    let mut current = HashSet::new();
    for (file, problems) in by_file {
        let key = format!("refused:{file}");
        current.insert(key.clone());
        let mut h = Sha256::new();
        problems.iter().for_each(|p| h.update(p.as_bytes()));
        h.update(std::fs::read(root.join(&file)).unwrap_or_default());
        let digest = crate::content::hex(&h.finalize());
        if store.noted(&key)?.as_deref() == Some(digest.as_str()) {
            continue;
        }
        store.note(&key, &digest, now)?;
        lines.push(Line::Refused { file, problems });
    }
    for key in store.noted_keys("refused:")? {
        if !current.contains(&key) {
            store.unnote(&key)?;
        }
    }
    Ok(())
}

/// When the pending issue goes out, as the office reads it.
fn when_it_goes(
    root: &Path,
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<String, crate::store::StoreError> {
    let readers = readers(root, store)?;
    let Some(schedule) = config.schedule.get() else {
        return Ok("配信の予定（schedule）が読めません。".into());
    };
    let calendar = crate::calendar::Calendar::of(config);
    let tick = calendar
        .next_sending_tick(schedule, &now.with_timezone(&config.tz()))
        .0;
    let gate = match store.gate(config.editor.as_ref().is_some_and(|e| e.approval))? {
        crate::store::Gate::Held => "（ただいま配信を保留中です。tayori release で再開します）",
        crate::store::Gate::AwaitingApproval => {
            "（編集担当の承認後に配信します。校正メールの「承認」から承認してください）"
        }
        crate::store::Gate::Open => "",
    };
    Ok(match tick {
        Some(t) => format!("{} の配信で {readers} 人の読者にお送りします{gate}", super::japan_time(config, t.with_timezone(&Utc))),
        None => format!("次の配信日時が見つかりません（schedule と calendar をご確認ください）。読者は {readers} 人です。"),
    })
}

/// How many readers the next issue reaches: the lists and the confirmed sign-ups, each
/// address once, suppressed ones left out.
pub fn readers(root: &Path, store: &Store) -> Result<usize, crate::store::StoreError> {
    let mut all = HashSet::new();
    crate::subscribers::each(&root.join("subscribers"), |s| {
        all.insert(crate::subscribers::key(s.email));
    });
    for s in store
        .signups()?
        .into_iter()
        .filter(|s| s.state == "subscribed")
    {
        all.insert(s.address);
    }
    let suppressed: HashSet<String> = store
        .suppressions()?
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    Ok(all.difference(&suppressed).count())
}

/// What to do about a problem, in plain words.
fn advice(problem: &str) -> &'static str {
    let p = problem.to_lowercase();
    if p.contains("too big") || p.contains("only .docx") {
        super::inbox::refusal_advice(&p)
    } else if p.contains("title") {
        "記事のタイトルがありません。1行目に「# タイトル」と書くか、Word なら文書の最初の行をタイトルにしてください。"
    } else if p.contains("date") {
        "日付は 2026-12-01 または 2026-12-01 09:00 のように書いてください。"
    } else if p.contains("slug") {
        "同じ名前（slug）の記事がすでにあります。ファイル名か slug: を変えてください。"
    } else if p.contains("empty") || p.contains("body") {
        "本文がありません。本文を書いて保存し直してください。"
    } else {
        "ファイルを直して保存し直すと、tayori が自動でもう一度読み込みます。"
    }
}

fn render(config: &Config, lines: &[Line], intro: &str) -> (String, maud::Markup, String) {
    let refused = lines
        .iter()
        .filter(|l| matches!(l, Line::Refused { .. } | Line::RefusedAttachment { .. }))
        .count();
    let ok = lines.len() - refused;
    let subject = match (ok, refused) {
        (_, 0) => format!(
            "【受付】{ok}件の記事を受け付けました（{}）",
            config.site.title
        ),
        (0, r) => format!(
            "【受付】{r}件のファイルを読み込めませんでした（{}）",
            config.site.title
        ),
        (o, r) => format!(
            "【受付】{o}件を受け付け、{r}件は読み込めませんでした（{}）",
            config.site.title
        ),
    };
    let mut text = format!("{intro}\n");
    for l in lines {
        text.push('\n');
        match l {
            Line::Published { title, url, updated, when, .. } => {
                let what = if *updated { "更新" } else { "公開" };
                text.push_str(&format!("■ {what}: {title}\n  {url}\n  {when}\n"));
            }
            Line::Scheduled { slug, at } => text.push_str(&format!("■ 公開予定: {slug}\n  {at} に公開します（date の日時）。\n")),
            Line::Refused { file, problems } => {
                text.push_str(&format!("■ 読み込めませんでした: {file}\n"));
                for p in problems {
                    text.push_str(&format!("  {p}\n  → {}\n", advice(p)));
                }
            }
            Line::RefusedAttachment { name, why } => text.push_str(&format!(
                "■ 受け付けられません: {name}\n  {why}\n  → {}\n",
                super::inbox::refusal_advice(why)
            )),
            Line::BackCatalogue(n) => text.push_str(&format!("■ これまでの記事 {n} 件を過去記事として取り込みました（読者へのメールは送りません）。\n")),
        }
    }
    let body = html! {
        h1 { "記事の受付" }
        p { (intro) }
        @for l in lines {
            @match l {
                Line::Published { title, url, updated, when, .. } => {
                    h2 { (if *updated { "更新: " } else { "公開: " }) (title) }
                    p { a href=(url) { (url) } br; (when) }
                }
                Line::Scheduled { slug, at } => {
                    h2 { "公開予定: " (slug) }
                    p { (at) " に公開します（date の日時）。" }
                }
                Line::Refused { file, problems } => {
                    h2 { "読み込めませんでした: " (file) }
                    @for p in problems {
                        p { code { (p) } br; "→ " (advice(p)) }
                    }
                }
                Line::RefusedAttachment { name, why } => {
                    h2 { "受け付けられません: " (name) }
                    p { code { (why) } br; "→ " (super::inbox::refusal_advice(why)) }
                }
                Line::BackCatalogue(n) => {
                    p { "これまでの記事 " (n) " 件を過去記事として取り込みました（読者へのメールは送りません）。" }
                }
            }
        }
    };
    (subject, body, text)
}
