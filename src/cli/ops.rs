//! The operating commands: `send`, `status`, `serve`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::load_config;
use crate::content::IngestOptions;
use crate::deliver::{self, Retry};
use crate::publish;
use crate::store::Store;
use crate::subscribers;
use crate::unsubscribe::Key;

/// One thread drives every connection: the work is waiting on sockets, and keeping it on one
/// thread saves the cross-thread wake-ups that otherwise cost more CPU than the sending.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Cancels `stop` on SIGINT or SIGTERM.
fn stop_on_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                },
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping: finishing what is in flight");
        stop.cancel();
    });
}

/// `send [--dry-run]`.
pub fn send(root: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if dry_run {
        return dry(root, &config);
    }
    let store = Store::open(root)?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        deliver::send(
            root,
            &config,
            store,
            Retry::default(),
            std::io::stderr().is_terminal(),
            stop,
        )
        .await
    })?;
    match summary.issue {
        None => println!("nothing to send: no posts published since the last issue"),
        Some(id) => println!(
            "issue {id} 「{}」: {} sent, {} failed, {} deferred → {}{}",
            summary.subject,
            summary.sent,
            summary.failed,
            summary.deferred,
            summary.destination,
            if summary.interrupted {
                " (stopped; `tayori send` resumes)"
            } else {
                ""
            }
        ),
    }
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `send --dry-run`: what the next issue would be, without changing anything.
fn dry(root: &Path, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let Some(store) = Store::open_read_only(root)? else {
        println!("dry run: first start — the posts now in posts/ would become the back catalogue; nothing would be sent");
        return Ok(ExitCode::SUCCESS);
    };
    let now = Utc::now();
    let scan = publish::scan(root, &IngestOptions::from_config(config));
    let mut waiting = Vec::new();
    for post in scan.posts.iter().filter(|p| !p.draft) {
        if publish::published_time(post, Some(&store), now) > now {
            continue;
        }
        let pending = match store.post(&post.slug)? {
            None => true,
            Some(r) => r.announced == "pending",
        };
        if pending {
            waiting.push(post.title.clone());
        }
    }
    let suppressed: std::collections::HashSet<String> =
        store.suppressions()?.into_iter().map(|s| s.0).collect();
    let mut audience = std::collections::HashSet::new();
    subscribers::each(&root.join("subscribers"), |s| {
        let key = subscribers::key(s.email);
        if !suppressed.contains(&key) {
            audience.insert(key);
        }
    });
    let audience = audience.len();
    if let Some(issue) = store.unfinished_issue()? {
        let left = store.count_in(issue.id, "pending")? + store.count_in(issue.id, "sending")?;
        println!(
            "dry run: issue {} 「{}」 would be resumed: {left} messages left",
            issue.id, issue.subject
        );
    } else if waiting.is_empty() {
        println!("dry run: nothing to send");
    } else {
        println!(
            "dry run: a new issue of {} post(s) to {audience} subscribers:",
            waiting.len()
        );
        for t in waiting {
            println!("  {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `status [--subscriber ADDR]`.
pub fn status(root: &Path, subscriber: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(root)?;
    if let Some(addr) = subscriber {
        let key = subscribers::key(addr);
        let mut found = false;
        subscribers::each(&root.join("subscribers"), |s| {
            if subscribers::key(s.email) == key {
                found = true;
                println!(
                    "{}  list {} ({}:{})  name {}  subscribed_at {}  source {}",
                    s.email,
                    s.list,
                    publish::display(s.origin).display(),
                    s.line,
                    s.name,
                    s.subscribed_at.unwrap_or("-"),
                    s.source.unwrap_or("-")
                );
            }
        });
        if !found {
            println!("{addr}: not in any list");
        }
        if let Some(store) = &store {
            if let Some((_, reason, at)) = store.suppressions()?.into_iter().find(|s| s.0 == key) {
                println!("suppressed since {at}: {reason}");
            }
            for d in store.deliveries_to(&key)? {
                println!(
                    "issue {}: {} (attempts {}) {} {}",
                    d.issue,
                    d.state,
                    d.attempts,
                    d.updated_at.unwrap_or_default(),
                    d.last_reply.unwrap_or_default()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let problems = subscribers::each(&root.join("subscribers"), |_| {});
    let Some(store) = store else {
        println!(
            "no state store yet: nothing has been published (run `tayori build` or `tayori send`)"
        );
        super::print_problems(&problems);
        return Ok(ExitCode::SUCCESS);
    };
    println!("issues:");
    let issues = store.issue_counts()?;
    if issues.is_empty() {
        println!("  none yet");
    }
    for i in &issues {
        println!(
            "  #{} {} {:7} sent {}  pending {}  sending {}  failed {}  「{}」",
            i.id, i.created_at, i.state, i.sent, i.pending, i.sending, i.failed, i.subject
        );
        for (email, attempts, reply) in store.deliveries_in(i.id, "failed")? {
            println!(
                "    failed {email} after {attempts} attempt(s): {}",
                reply.unwrap_or_default()
            );
        }
    }
    let waiting = store.pending_posts()?;
    println!(
        "posts waiting for the next issue: {}",
        if waiting.is_empty() {
            "none".to_string()
        } else {
            waiting.join(", ")
        }
    );
    let suppressed = store.suppressions()?;
    println!("suppressed addresses: {}", suppressed.len());
    for (address, reason, at) in suppressed {
        println!("  {address}  {at}  {reason}");
    }
    let events = store.webhook_events()?;
    println!("webhook events: {}", events.len());
    for e in events {
        let attempts: Vec<String> = store
            .webhook_attempts(&e.id)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        println!(
            "  {} {} {} {}  attempts: {}",
            e.created_at.to_rfc3339(),
            e.event,
            e.slug,
            e.state,
            if attempts.is_empty() {
                "none yet".to_string()
            } else {
                attempts.join(", ")
            }
        );
    }
    println!("invalid subscriber rows: {}", problems.len());
    for p in &problems {
        println!("  {p}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve`: only the HTTP server, until SIGINT/SIGTERM.
pub fn serve(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let key = Key::load(root, true)?.expect("created when absent");
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, "serving feeds, archive and unsubscribe");
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        let state = crate::server::AppState {
            root: root.to_path_buf(),
            config: Arc::new(config),
            key,
        };
        crate::server::serve(listener, state, stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `run`: the daemon, until SIGINT/SIGTERM.
pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen).await?;
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        crate::daemon::run(root.to_path_buf(), config, listener, stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}
