//! `tayori serve` (only the HTTP server) and `tayori run` (the daemon), until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{load_config, stop_on_signals};
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

/// `run`: the daemon, until SIGINT/SIGTERM, on the same runtime as `serve`; issues are sent
/// on a thread of their own (see `daemon`).
pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = server_runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("listening on {} (server.listen)", config.server.listen))?;
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        crate::daemon::run(root.to_path_buf(), config, listener, stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}
