//! `tayori send`: one issue now, `--dry-run`, `--test ADDR` and `--retry-failed`, with the
//! exit statuses of the contract (1: a delivery failed permanently; 2: the run stopped early).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{load_config, runtime, stop_on_signals};
use crate::deliver::next_issue::{self, Next};
use crate::deliver::single;
use crate::deliver::{self, Retry};
use crate::store::Store;
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
        let sent = deliver::send(
            root,
            &config,
            store,
            Retry::default(),
            std::io::stderr().is_terminal(),
            stop,
        )
        .await;
        // Sign-up confirmations the relay has not taken yet go out too.
        if let Err(e) = crate::signup::confirmations::send_pending(root, &config).await {
            eprintln!("tayori: sign-up confirmations: {e:#}");
        }
        sent
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
