//! `tayori send`: one issue now, `--dry-run`, `--test ADDR` and `--retry-failed`, with the
//! exit statuses of the contract (1: a delivery failed permanently; 2: the run stopped early).
//!
//! One sender per folder (see [`crate::lock`]): `send` sends only while it holds the folder's
//! sender lock. While `tayori run` holds it, the issue is handed to the daemon as a request
//! and followed to the end, with the same summary and exit status; while another `send` holds
//! it, this one says so, waits, and then sends what is still pending (normally nothing).
//! `--dry-run` and `--test` change no ledger and take no lock.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{load_config, runtime, stop_on_signals};
use crate::config::Config;
use crate::daemon::requests::{self, SendAnswer, SendArgs};
use crate::deliver::next_issue::{self, Next};
use crate::deliver::single;
use crate::deliver::{self, Retry};
use crate::lock::{self, Attempt, Holder, SenderLock};
use crate::store::{RequestState, Store};
use crate::subscribers;
use crate::unsubscribe::Key;

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
    if let Err(e) = Store::open(root) {
        eprintln!("tayori: {e}");
        return Ok(ExitCode::from(STOPPED));
    }
    // Checked before anything is published or sent, not when the first message is due.
    if let Err(e) = Key::load_or_create(root) {
        eprintln!("tayori: {e}");
        return Ok(ExitCode::from(STOPPED));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        one_sender(root, &config, retry_failed, stop).await
    })
}

/// Sends here once this process holds the folder's sender lock; hands the issue to a daemon
/// that holds it; waits for another `send` that holds it.
async fn one_sender(
    root: &Path,
    config: &Config,
    retry_failed: bool,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let mut said = false;
    loop {
        match SenderLock::try_acquire(root, lock::Command::Send) {
            Err(e) => {
                eprintln!("tayori: the sender lock: {e}");
                return Ok(ExitCode::from(STOPPED));
            }
            Ok(Attempt::Acquired(held)) => {
                return send_here(root, config, &held, retry_failed, stop).await;
            }
            Ok(Attempt::Held(Some(h))) if h.command == lock::Command::Run => {
                return hand_to_daemon(root, config, &h, retry_failed, stop).await;
            }
            Ok(Attempt::Held(holder)) => {
                if !said {
                    let who = holder.map_or("another tayori process".into(), |h| {
                        h.describe(&config.tz())
                    });
                    eprintln!(
                        "tayori: {who} is sending this folder's issue; waiting for it to finish"
                    );
                    said = true;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {
                eprintln!("tayori: stopped while waiting; nothing was sent");
                return Ok(ExitCode::from(STOPPED));
            }
            _ = tokio::time::sleep(LOCK_POLL) => {}
        }
    }
}

/// How often a waiting `send` tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// `send` by this process, holding the lock: publishes what is due and sends (or resumes) one
/// issue.
async fn send_here(
    root: &Path,
    config: &Config,
    held: &SenderLock,
    retry_failed: bool,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tayori: {e}");
            return Ok(ExitCode::from(STOPPED));
        }
    };
    if retry_failed {
        print_retried(deliver::requeue_failed(root, &store)?);
    }
    let mut store = store;
    if let Some(read) = deliver::read_bounces(root, config, &mut store).await {
        // Unreadable for an hour: the office is told (and when it reads again).
        crate::editor::alert::mailbox_read(root, config, &store, read.as_ref().err());
    }
    let result = deliver::send(
        root,
        config,
        store,
        held,
        Retry::default(),
        std::io::stderr().is_terminal(),
        stop,
    )
    .await;
    // Sign-up confirmations the relay has not taken yet go out too.
    if let Err(e) = crate::server::signup::confirmations::send_pending(root, config).await {
        eprintln!("tayori: sign-up confirmations: {e:#}");
    }
    crate::editor::after_send(root, config, &result).await;
    Ok(report(result.map_err(|e| e.to_string())))
}

fn print_retried(retried: Option<(i64, usize)>) {
    match retried {
        Some((id, n)) => println!("issue {id}: {n} failed deliveries queued again"),
        None => println!("no issue yet: nothing to retry"),
    }
}

/// Hands the issue to the daemon that holds the lock and follows it to the end. If the daemon
/// dies first (the lock comes free with the request unanswered), the request is taken back and
/// sent here.
async fn hand_to_daemon(
    root: &Path,
    config: &Config,
    daemon: &Holder,
    retry_failed: bool,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let args = serde_json::to_string(&SendArgs { retry_failed })?;
    let id = store.request(requests::SEND, &args, Utc::now())?;
    eprintln!(
        "tayori: {} runs on this folder: the issue is handed to it; following it to the end",
        daemon.describe(&config.tz())
    );
    let progress = std::io::stderr().is_terminal().then(Progress::default);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                eprintln!("tayori: no longer following; the daemon goes on (`tayori status` shows it)");
                return Ok(ExitCode::from(STOPPED));
            }
            _ = tokio::time::sleep(LOCK_POLL) => {}
        }
        match store.request_state(id)? {
            Some(RequestState::Answered(a)) => {
                let answer: SendAnswer = serde_json::from_str(&a)?;
                if retry_failed {
                    print_retried(answer.retried);
                }
                return Ok(report(answer.outcome));
            }
            Some(RequestState::Waiting | RequestState::Taken) => {}
            Some(RequestState::Abandoned) | None => {
                anyhow::bail!("request {id} to the daemon is gone from the store")
            }
        }
        if let Some(p) = &progress {
            p.show(&store);
        }
        if let Attempt::Acquired(held) = SenderLock::try_acquire(root, lock::Command::Send)? {
            if store.abandon_request(id)? {
                eprintln!("tayori: the daemon ended without answering; sending here");
                return send_here(root, config, &held, retry_failed, stop).await;
            }
        }
    }
}

/// The progress of the issue the daemon sends, on a terminal.
#[derive(Default)]
struct Progress(std::cell::OnceCell<indicatif::ProgressBar>);

impl Progress {
    fn show(&self, store: &Store) {
        let Ok(counts) = store.issue_counts() else {
            return;
        };
        let Some(c) = counts.iter().find(|c| c.state == "sending") else {
            return;
        };
        let total = (c.sent + c.pending + c.sending + c.failed) as u64;
        let pb = self.0.get_or_init(|| indicatif::ProgressBar::new(total));
        pb.set_length(total);
        pb.set_position((c.sent + c.failed) as u64);
    }
}

/// Prints what a `send` did — by itself or through the daemon — and gives its exit status:
/// 0, 1 when a delivery failed permanently, 2 when the run stopped early.
fn report(result: Result<deliver::Summary, String>) -> ExitCode {
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tayori: {e}");
            return ExitCode::from(STOPPED);
        }
    };
    let Some(id) = summary.issue else {
        println!("nothing to send: no posts published since the last issue");
        return ExitCode::SUCCESS;
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
        return ExitCode::FAILURE;
    }
    if summary.deferred > 0 || summary.interrupted {
        if let Some(reply) = &summary.last_deferral {
            eprintln!(
                "tayori: {} deliveries deferred, pending for the next run; last reply: {reply}",
                summary.deferred
            );
        }
        return ExitCode::from(STOPPED);
    }
    ExitCode::SUCCESS
}

/// `send --dry-run`: what the next issue would be, without changing anything.
fn dry(root: &Path, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    // Posts that cannot be read are named here too: they would not be in the issue.
    let opts = crate::content::IngestOptions::from_config(config).with_media_cache(root, false);
    if let Ok(scan) = crate::publish::scan(root, &opts) {
        for p in &scan.problems {
            eprintln!("{p}; not in the issue");
        }
    }
    match next_issue::next_issue(root, config)? {
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
    let rendered = match next_issue::next_issue(root, config)? {
        Next::New { rendered, .. } | Next::Resume { rendered, .. } => rendered,
        Next::FirstStart | Next::Nothing => {
            println!("nothing to send: no posts published since the last issue");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let rt = runtime()?;
    let to = rt.block_on(single::send_test(root, config, address, &rendered))?;
    println!("test of 「{}」 sent to {address} → {to}", rendered.subject);
    Ok(ExitCode::SUCCESS)
}
