//! `tayori serve` (only the HTTP server) and `tayori run` (the daemon), until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{load_config, stop_on_signals};
use crate::lock::{self, Attempt, SenderLock};
use crate::unsubscribe::Key;

/// The runtime of `serve` and `run`: two worker threads, so that the server answers while the
/// other is busy; blocking work (the store, files, sign-up emails) goes to tokio's blocking
/// pool, never onto these.
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `serve`: only the HTTP server (and the sign-up confirmations it queues), until
/// SIGINT/SIGTERM.
pub fn serve(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let key = Key::load_or_create(root).context("the unsubscribe key")?;
    let rt = server_runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("listening on {} (server.listen)", config.server.listen))?;
        tracing::info!(listen = %listener.local_addr()?, "serving feeds, archive and unsubscribe");
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        let state = crate::server::AppState::new(root, Arc::new(config), key);
        crate::server::serve(listener, state, stop).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `run`: the daemon, until SIGINT/SIGTERM; SIGHUP reloads `tayori.yaml`. Two runtime
/// threads, so that the server answers while the other is busy; issues are sent on a thread
/// of their own (see `daemon`). It holds the folder's sender lock for its whole life: a second
/// `run` refuses to start (exit 2), and a `send` under way is waited for.
pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = server_runtime()?;
    rt.block_on(async {
        // First of all: from now on a SIGHUP never ends the daemon.
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        let held = match take_lock(root, &config, &stop).await? {
            Taken::Held(held) => held,
            Taken::Refused => return Ok(ExitCode::from(ANOTHER_DAEMON)),
            Taken::Stopped => return Ok(ExitCode::SUCCESS),
        };
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("listening on {} (server.listen)", config.server.listen))?;
        crate::daemon::run(root.to_path_buf(), config, listener, stop, held, hangup).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Exit status of a `run` refused because another daemon runs on the folder.
const ANOTHER_DAEMON: u8 = 2;

enum Taken {
    Held(SenderLock),
    /// Another `run` holds it (said in one line).
    Refused,
    /// SIGTERM or SIGINT while waiting.
    Stopped,
}

/// The folder's sender lock for the daemon, unless another `run` holds it; waits while a
/// `send` holds it.
async fn take_lock(
    root: &Path,
    config: &crate::config::Config,
    stop: &CancellationToken,
) -> anyhow::Result<Taken> {
    let mut said = false;
    loop {
        match SenderLock::try_acquire(root, lock::Command::Run).context("the sender lock")? {
            Attempt::Acquired(held) => return Ok(Taken::Held(held)),
            Attempt::Held(Some(h)) if h.command == lock::Command::Run => {
                eprintln!(
                    "tayori: {} already runs on this folder; a second daemon does not start",
                    h.describe(&config.tz())
                );
                return Ok(Taken::Refused);
            }
            Attempt::Held(holder) if !said => {
                let who = holder.map_or("another tayori process".into(), |h| {
                    h.describe(&config.tz())
                });
                tracing::info!("{who} is sending this folder's issue; starting once it is done");
                said = true;
            }
            Attempt::Held(_) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(Taken::Stopped),
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}
