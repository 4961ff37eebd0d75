//! Alerts (警告) and their resolution (復旧): each cause is told at most once per
//! [`crate::store::ALERT_QUIET`] while it lasts, and resolved once when it clears (the store
//! remembers both across restarts). When mail itself is what failed, the alert is also POSTed
//! to `editor.alert_webhook` as `{"type", "cause", "text", "at"}` — `text` is what Slack,
//! Mattermost and Google Chat show — and the mail waits in the queue until the relay takes it.

use std::path::Path;

use chrono::Utc;
use maud::html;

use super::kind;
use crate::config::Config;
use crate::store::{Shared, Store, StoreError};

/// Sending stopped: the relay (or `outbox/`) does not take mail; issues and editor mail wait.
pub const SMTP: &str = "sending";
/// A cross-post target refuses tayori (401/403).
pub const CROSSPOST: &str = "crosspost";
/// Less than 100 MiB free under the folder.
pub const DISK: &str = "disk";
/// An issue's bounce rate above 2 %, or a complaint.
pub const BOUNCES: &str = "bounces";
/// The bounce mailbox unreadable for an hour.
pub const MAILBOX: &str = "mailbox";
/// The editors' inbox (post by email) unreadable for an hour.
pub const INBOX: &str = "inbox";
/// How long a mailbox may be unreadable before the office is told.
const MAILBOX_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Free space under the folder below which the office is told.
pub const LOW_DISK: u64 = 100 * 1024 * 1024;

/// What to do about each cause, in plain words.
fn advice(cause: &str) -> &'static str {
    let cause = cause.split('.').next().unwrap_or(cause);
    match cause {
        SMTP => "メールの送信サーバー（smtp.url）の設定、パスワード（TAYORI_SMTP_PASSWORD）の期限、契約の状態を確かめてください。直れば tayori が自動で送信を再開します。未送信の号は失われず、誰にも二重には届きません。",
        CROSSPOST => "ブログ側でアプリケーションパスワードが失効・変更されていないか確かめてください。直れば未送信の投稿は自動で送られます。",
        DISK => "フォルダのあるディスクの空き容量を増やしてください（古いファイルの削除など）。空きがないと記事の公開や配信の記録ができません。",
        BOUNCES => "宛先の誤りや迷惑メール扱いが増えると、メール全体が届きにくくなります。tayori status で宛先を確かめ、不要な宛先は tayori subscribers remove で外してください。",
        MAILBOX => "バウンス受信用メールボックス（bounces.mailbox）の設定とパスワード（TAYORI_BOUNCE_PASSWORD）、サーバーの状態を確かめてください。",
        INBOX => "記事の受付用メールボックス（editor.inbox）の設定とパスワード（TAYORI_INBOX_PASSWORD）、サーバーの状態を確かめてください。読めるようになれば、届いている記事は自動で取り込みます。",
        super::inbox::FORGED => "心当たりがなければ、なりすましです。返信はせず、添付ファイルも開かないでください。ご自身が送ったものなら、いつものメールソフト・いつもの送信サーバーから送り直してください（転送や別のサービス経由では認証を通りません）。",
        _ => "tayori のログ（run の出力）をご確認ください。",
    }
}

fn title(cause: &str) -> &'static str {
    let cause = cause.split('.').next().unwrap_or(cause);
    match cause {
        SMTP => "メールの送信が止まっています",
        CROSSPOST => "ブログへの転載が止まっています",
        DISK => "ディスクの空きが少なくなっています",
        BOUNCES => "配信不能または迷惑メール報告が多くなっています",
        MAILBOX => "バウンス受信用メールボックスが1時間以上読めません",
        INBOX => "記事の受付用メールボックスが1時間以上読めません",
        super::inbox::FORGED => "なりすまし: 編集担当を名乗るメールが認証を通りませんでした",
        _ => "問題が起きています",
    }
}

fn resolved_title(cause: &str) -> &'static str {
    let cause = cause.split('.').next().unwrap_or(cause);
    match cause {
        SMTP => "メールの送信が再開しました",
        CROSSPOST => "ブログへの転載が再開しました",
        DISK => "ディスクの空きが戻りました",
        BOUNCES => "配信不能の割合は落ち着きました",
        MAILBOX => "バウンス受信用メールボックスが読めるようになりました",
        INBOX => "記事の受付用メールボックスが読めるようになりました",
        _ => "問題は解消しました",
    }
}

/// Raises `cause` (see [`Store::raise_alert`]); when it is to be told, queues the alert mail
/// and, with `hook` (mail is what failed), the webhook.
pub fn raise_now(
    root: &Path,
    config: &Config,
    store: &Store,
    cause: &str,
    text: &str,
    hook: bool,
) -> Result<(), super::QueueError> {
    raise_every(
        root,
        config,
        store,
        cause,
        text,
        hook,
        crate::store::ALERT_QUIET,
    )
}

/// [`raise_now`] told at most once per `quiet` for this cause (a forged post: once an hour).
pub fn raise_every(
    root: &Path,
    config: &Config,
    store: &Store,
    cause: &str,
    text: &str,
    hook: bool,
    quiet: chrono::TimeDelta,
) -> Result<(), super::QueueError> {
    let now = Utc::now();
    if !super::enabled(config) || !store.raise_alert_every(cause, text, quiet, now)? {
        return Ok(());
    }
    tracing::warn!(cause, "alert: {text}");
    let what = title(cause);
    let todo = advice(cause);
    let subject = format!("【警告】{what}（{}）", config.site.title);
    let body = html! {
        h1 { (what) }
        p { strong { "何が起きたか: " } (text) }
        p { strong { "どうすればよいか: " } (todo) }
        p { "起きた時刻: " (super::japan_time(config, now)) }
    };
    let plain = format!(
        "{what}\n\n何が起きたか: {text}\n\nどうすればよいか: {todo}\n\n起きた時刻: {}",
        super::japan_time(config, now)
    );
    super::queue(
        root,
        config,
        store,
        super::Mail {
            kind: kind::ALERT,
            subject: &subject,
            body,
            text: &plain,
        },
        now,
    )?;
    if hook {
        hook_now(
            config,
            store,
            "alert",
            cause,
            &format!("【警告】{what}: {text} — {todo}"),
        )?;
    }
    Ok(())
}

/// Clears `cause`; when its alert was told, queues the resolution (mail, and webhook when the
/// office has one: the alert may have gone there).
pub fn clear_now(
    root: &Path,
    config: &Config,
    store: &Store,
    cause: &str,
) -> Result<(), super::QueueError> {
    if !super::enabled(config) || !store.clear_alert(cause)? {
        return Ok(());
    }
    let now = Utc::now();
    let what = title(cause);
    tracing::info!(cause, "resolved: {what}");
    let done = resolved_title(cause);
    let subject = format!("【復旧】{done}（{}）", config.site.title);
    let body = html! {
        h1 { "復旧しました" }
        p { "先にお知らせした「" (what) "」は解消しました。止まっていた処理は自動で再開しています。" }
        p { "時刻: " (super::japan_time(config, now)) }
    };
    let plain = format!("復旧しました\n\n先にお知らせした「{what}」は解消しました。止まっていた処理は自動で再開しています。\n\n時刻: {}", super::japan_time(config, now));
    super::queue(
        root,
        config,
        store,
        super::Mail {
            kind: kind::RESOLVED,
            subject: &subject,
            body,
            text: &plain,
        },
        now,
    )?;
    hook_now(config, store, "resolved", cause, &format!("【復旧】{done}"))?;
    Ok(())
}

/// Queues the webhook JSON for `editor.alert_webhook`, when there is one.
fn hook_now(
    config: &Config,
    store: &Store,
    kind_: &str,
    cause: &str,
    text: &str,
) -> Result<(), StoreError> {
    if config
        .editor
        .as_ref()
        .and_then(|e| e.alert_webhook.as_ref())
        .is_none()
    {
        return Ok(());
    }
    let now = Utc::now();
    let body = serde_json::json!({
        "type": kind_,
        "cause": cause,
        "text": text,
        "at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    store.queue_editor_mail(kind::WEBHOOK, cause, "", &body.to_string(), now)?;
    Ok(())
}

/// What a cross-post target's queue told ([`crate::crosspost::Told`]): stopped with why, or
/// delivering again. An alert when it stops, `resolved` when it delivers.
pub async fn crosspost(
    root: &Path,
    config: &std::sync::Arc<Config>,
    store: &Shared,
    name: &str,
    stopped: Option<&str>,
) {
    let cause = format!("{CROSSPOST}.{name}");
    let done = match stopped {
        Some(why) => {
            let text = format!("ブログへの転載先が tayori を受け付けなくなりました（{why}）。転載待ちの投稿は残っています。パスワード（アプリケーションパスワード）やトークンを確かめてから、tayori を再起動してください。");
            raise(root, config, store, &cause, &text, false).await
        }
        None => clear(root, config, store, &cause).await,
    };
    if let Err(e) = done {
        tracing::error!("{name}: the office could not be told: {e}");
    }
}

/// [`raise_now`] from async code.
pub async fn raise(
    root: &Path,
    config: &std::sync::Arc<Config>,
    store: &Shared,
    cause: &str,
    text: &str,
    hook: bool,
) -> Result<(), String> {
    let (root, config, cause, text) = (
        root.to_path_buf(),
        config.clone(),
        cause.to_string(),
        text.to_string(),
    );
    store
        .call(move |s| {
            raise_now(&root, &config, s, &cause, &text, hook)
                .map_err(|e| StoreError::Abandoned(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())
}

/// [`clear_now`] from async code.
pub async fn clear(
    root: &Path,
    config: &std::sync::Arc<Config>,
    store: &Shared,
    cause: &str,
) -> Result<(), String> {
    let (root, config, cause) = (root.to_path_buf(), config.clone(), cause.to_string());
    store
        .call(move |s| {
            clear_now(&root, &config, s, &cause).map_err(|e| StoreError::Abandoned(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())
}

/// After a read of the bounce mailbox: failing for [`MAILBOX_GRACE`] raises [`MAILBOX`]; a
/// read that works clears it.
pub fn mailbox_read(root: &Path, config: &Config, store: &Store, failed: Option<&String>) {
    let r = unreadable(
        root,
        config,
        store,
        failed,
        (
            MAILBOX,
            "editor_mailbox_failing_since",
            "バウンス受信用メールボックス",
        ),
    )
    .and_then(|()| match failed {
        None => bounce_rate(root, config, store),
        Some(_) => Ok(()),
    });
    if let Err(e) = r {
        tracing::error!("telling the office about the bounce mailbox: {e}");
    }
}

/// After a reading of the editors' inbox: failing for [`MAILBOX_GRACE`] raises [`INBOX`]; a
/// reading that works resolves it.
pub fn inbox_read(root: &Path, config: &Config, store: &Store, failed: Option<&String>) {
    let which = (
        INBOX,
        "editor_inbox_failing_since",
        "記事の受付用メールボックス",
    );
    if let Err(e) = unreadable(root, config, store, failed, which) {
        tracing::error!("telling the office about the editors' inbox: {e}");
    }
}

/// A mailbox (`cause`, the `meta` key of since when it fails, its name) read or not.
fn unreadable(
    root: &Path,
    config: &Config,
    store: &Store,
    failed: Option<&String>,
    (cause, since_key, name): (&str, &str, &str),
) -> Result<(), super::QueueError> {
    let now = Utc::now();
    let Some(why) = failed else {
        store.set_meta(since_key, "")?;
        return clear_now(root, config, store, cause);
    };
    let since = store
        .meta(since_key)?
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    match since {
        None => store.set_meta(since_key, &now.to_rfc3339())?,
        Some(t) if now - t >= MAILBOX_GRACE => {
            let text = format!(
                "{name}を読めない状態が {} から続いています: {why}",
                super::japan_time(config, t)
            );
            raise_now(root, config, store, cause, &text, false)?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// The newest issue's bounce rate above 2 % of those sent, or any complaint about it, raises
/// [`BOUNCES`] (once per quiet time: the reports keep coming for days).
fn bounce_rate(root: &Path, config: &Config, store: &Store) -> Result<(), super::QueueError> {
    let newest = store
        .bounce_rates()?
        .into_iter()
        .find(|(_, _, sent)| *sent > 0);
    let Some((issue, bounced, sent)) = newest else {
        return Ok(());
    };
    let complaints = store.complaints_of(issue)?;
    if bounced * 100 > 2 * sent || complaints > 0 {
        let text = format!(
            "第{issue}号で配信不能が {bounced} 件（送信 {sent} 件中、{:.1} %）、迷惑メール報告が {complaints} 件ありました。",
            bounced as f64 * 100.0 / sent as f64
        );
        raise_now(root, config, store, BOUNCES, &text, false)?;
    }
    Ok(())
}

/// Free bytes under `root` (statvfs), when the system says.
pub fn free_bytes(root: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a properly sized, writable struct.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Raises [`DISK`] under [`LOW_DISK`] free, clears it above; looks at most once a minute.
pub fn check_disk(root: &Path, config: &Config, store: &Store) -> Result<(), super::QueueError> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp();
    if now - LAST.load(Ordering::Relaxed) < 60 {
        return Ok(());
    }
    LAST.store(now, Ordering::Relaxed);
    let Some(free) = free_bytes(root) else {
        return Ok(());
    };
    if free < LOW_DISK {
        let text = format!(
            "フォルダのあるディスクの空きが {} MiB しかありません（100 MiB 未満）。",
            free / (1024 * 1024)
        );
        raise_now(root, config, store, DISK, &text, false)
    } else {
        clear_now(root, config, store, DISK)
    }
}
