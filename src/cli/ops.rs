//! The operating commands: `send`, `status`, `serve`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::load_config;
use crate::deliver::preview::{self, Next};
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

/// Exit status of a run that stopped early (server, config, disk): what is unsent stays pending.
const STOPPED: u8 = 2;

/// `send [--dry-run | --test ADDR | --retry-failed]`.
pub fn send(
    root: &Path,
    dry_run: bool,
    test: Option<&str>,
    retry_failed: bool,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(_) => return Ok(ExitCode::from(STOPPED)),
    };
    if dry_run {
        return dry(root, &config);
    }
    if let Some(address) = test {
        return send_test(root, &config, address);
    }
    if config.smtp.is_some() {
        if let Some(w) = crate::config::unreachable_public_url(&config) {
            tracing::warn!("{w}");
        }
    }
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tayori: {e}");
            return Ok(ExitCode::from(STOPPED));
        }
    };
    // Checked before anything is published or sent, not when the first message is due.
    if let Err(e) = Key::load_or_create(root) {
        eprintln!("tayori: {e}");
        return Ok(ExitCode::from(STOPPED));
    }
    if retry_failed {
        match store.retry_failed()? {
            Some((id, n)) => {
                if let Some(issue) = store.issue(id)?.filter(|_| n > 0) {
                    crate::store::Journal::of(root).reopened(&issue)?;
                }
                println!("issue {id}: {n} failed deliveries queued again");
            }
            None => println!("no issue yet: nothing to retry"),
        }
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
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
    });
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tayori: {e}");
            return Ok(ExitCode::from(STOPPED));
        }
    };
    let Some(id) = summary.issue else {
        println!("nothing to send: no posts published since the last issue");
        return Ok(ExitCode::SUCCESS);
    };
    println!(
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
    );
    if summary.failed > 0 {
        println!("see `tayori status` for each failure; `tayori send --retry-failed` sends them again once the cause is fixed");
        return Ok(ExitCode::FAILURE);
    }
    if summary.deferred > 0 || summary.interrupted {
        if let Some(reply) = &summary.last_deferral {
            eprintln!(
                "tayori: {} deliveries deferred, pending for the next run; last reply: {reply}",
                summary.deferred
            );
        }
        return Ok(ExitCode::from(STOPPED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `send --dry-run`: what the next issue would be, without changing anything.
fn dry(root: &Path, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    match preview::next_issue(root, config)? {
        Next::FirstStart => println!(
            "dry run: first start — the posts now in posts/ would become the back catalogue; nothing would be sent"
        ),
        Next::Nothing => println!("dry run: nothing to send"),
        Next::Resume { issue, rendered, left } => println!(
            "dry run: issue {issue} 「{}」 would be resumed: {left} messages left",
            rendered.subject
        ),
        Next::New { rendered, titles } => {
            let store = Store::open_read_only(root)?;
            let suppressed: std::collections::HashSet<String> = match &store {
                Some(s) => s.suppressions()?.into_iter().map(|s| s.0).collect(),
                None => Default::default(),
            };
            let mut audience = std::collections::HashSet::new();
            subscribers::each(&root.join("subscribers"), |s| {
                let key = subscribers::key(s.email);
                if !suppressed.contains(&key) {
                    audience.insert(key);
                }
            });
            println!(
                "dry run: a new issue 「{}」 of {} post(s) to {} subscribers:",
                rendered.subject,
                titles.len(),
                audience.len()
            );
            for t in titles {
                println!("  {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `send --test ADDR`: the next issue to one address, the ledger untouched.
fn send_test(
    root: &Path,
    config: &crate::config::Config,
    address: &str,
) -> anyhow::Result<ExitCode> {
    if !subscribers::valid_address(address) {
        eprintln!("{address}: not a valid email address");
        return Ok(ExitCode::FAILURE);
    }
    let rendered = match preview::next_issue(root, config)? {
        Next::New { rendered, .. } | Next::Resume { rendered, .. } => rendered,
        Next::FirstStart | Next::Nothing => {
            println!("nothing to send: no posts published since the last issue");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let rt = runtime()?;
    let to = rt.block_on(preview::send_test(root, config, address, &rendered))?;
    println!("test of 「{}」 sent to {address} → {to}", rendered.subject);
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
        super::print_problems(&problems.all().cloned().collect::<Vec<_>>());
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
    for p in &problems.unreadable {
        println!("unreadable subscriber list (no issue is made until it is fixed): {p}");
    }
    println!("invalid subscriber rows: {}", problems.rows.len());
    for p in &problems.rows {
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
    let key = Key::load_or_create(root)?;
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

/// `run`: the daemon, until SIGINT/SIGTERM. Two runtime threads, so that the server answers
/// while the other is busy; issues are sent on a thread of their own (see `daemon`).
pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen).await?;
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        crate::daemon::run(root.to_path_buf(), config, listener, stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}
