//! `tayori hold` / `tayori release`: hold the pending issue (its ticks pass, nothing goes out)
//! or release it — with `editor.approval`, releasing is the approval of the issue as it is now.
//! A running daemon is asked through a request and obeys at once (a release after a tick that
//! passed sends at once); otherwise the store is changed here. Exit 1 when no issue is pending.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::daemon::requests::{GateAnswer, HOLD, RELEASE};
use crate::lock::{self, Attempt, SenderLock};
use crate::store::{RequestState, Store};

/// `hold` (`release` false) or `release`.
pub fn run(root: &Path, release: bool) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let kind = if release { RELEASE } else { HOLD };
    let store = Store::open(root)?;
    let answer = match SenderLock::try_acquire(root, lock::Command::Send)? {
        Attempt::Held(Some(h)) if h.command == lock::Command::Run => {
            eprintln!(
                "tayori: {} runs on this folder: asking it",
                h.describe(&config.tz())
            );
            ask_daemon(root, &store, kind)?
        }
        // No daemon (or a `send` that already made its issue): the store is changed here.
        _ => direct(&store, kind)?,
    };
    if answer.done {
        println!("{}", answer.message);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("tayori: {}", answer.message);
        Ok(ExitCode::from(1))
    }
}

fn direct(store: &Store, kind: &str) -> anyhow::Result<GateAnswer> {
    let done = if kind == HOLD {
        store.hold()?
    } else {
        store.release(None)?
    };
    Ok(GateAnswer {
        done,
        message: crate::editor::gate_message(kind, done),
    })
}

/// Asks the daemon and waits for its answer; if it ends without answering, does it here.
fn ask_daemon(root: &Path, store: &Store, kind: &str) -> anyhow::Result<GateAnswer> {
    let id = store.request(kind, "{}", Utc::now())?;
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match store.request_state(id)? {
            Some(RequestState::Answered(a)) => return Ok(serde_json::from_str(&a)?),
            Some(RequestState::Waiting | RequestState::Taken) => {}
            Some(RequestState::Abandoned) | None => {
                anyhow::bail!("request {id} to the daemon is gone from the store")
            }
        }
        let daemon_gone = matches!(
            SenderLock::try_acquire(root, lock::Command::Send)?,
            Attempt::Acquired(_)
        );
        if (daemon_gone || started.elapsed() > Duration::from_secs(30))
            && store.abandon_request(id)?
        {
            eprintln!("tayori: the daemon did not answer; changing the store here");
            return direct(store, kind);
        }
    }
}
