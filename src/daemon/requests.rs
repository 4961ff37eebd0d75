//! Requests to the running daemon (see `store::requests`): what a `send` asks and what the
//! daemon answers, and the thread that takes new requests from the store within
//! [`REQUEST_POLL`] so the daemon reacts at once rather than at its next tick.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::deliver::Summary;
use crate::store::{Request, Store};

/// How often the daemon looks for new requests.
pub const REQUEST_POLL: Duration = Duration::from_millis(200);

/// The kind of request `tayori send` makes.
pub const SEND: &str = "send";

/// What `tayori send` asks of the daemon.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SendArgs {
    /// `--retry-failed`: the last issue's failed deliveries are queued again first.
    pub retry_failed: bool,
}

/// What the daemon answers a `send`: what `send` prints and its exit status follow from it,
/// exactly as when `send` sends by itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SendAnswer {
    /// With `--retry-failed`: the issue and how many failed deliveries were queued again.
    pub retried: Option<(i64, usize)>,
    /// The issue sent (an issue of `None`: nothing to send), or why the run stopped early.
    pub outcome: Result<Summary, String>,
}

/// Takes the waiting requests every [`REQUEST_POLL`] on a thread of its own (with its own store
/// connection) and hands them to the loop, until `stop`. Requests a daemon that died had
/// taken are waiting again first: this daemon holds the sender lock now.
pub(super) fn watch(
    root: PathBuf,
    to_loop: UnboundedSender<Request>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("requests".into())
        .spawn(move || {
            let store = match Store::open(&root) {
                Ok(s) => s,
                Err(e) => return tracing::error!("requests to the daemon are not read: {e}"),
            };
            if let Err(e) = store.requeue_requests() {
                tracing::error!("requests to the daemon: {e}");
            }
            let mut failing = false;
            while !stop.is_cancelled() {
                match store.take_requests(Utc::now()) {
                    Ok(taken) => {
                        failing = false;
                        for r in taken {
                            tracing::info!(request = r.id, kind = %r.kind, "request taken");
                            if to_loop.send(r).is_err() {
                                return;
                            }
                        }
                    }
                    // Said once per outage, not five times a second; tried again all the same.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!("requests to the daemon cannot be read: {e}");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(REQUEST_POLL);
            }
        })
}
