//! Requests to the running daemon (see `store::requests`): what a `send` asks and what the
//! daemon answers, the thread that takes new requests from the store within [`REQUEST_POLL`]
//! so the daemon reacts at once rather than at its next tick, and how the loop serves them: a
//! `send` starts an issue thread at once, or — while one is sending — the next one, and is
//! answered with what that thread did (or, when it found nothing more to send, with the issue
//! the daemon was sending when the request came).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::tasks::{Daemon, Round};
use super::Loop;
use crate::deliver::Summary;
use crate::store::{Request, Store};

/// How often the daemon looks for new requests.
pub const REQUEST_POLL: Duration = Duration::from_millis(200);

/// The kind of request `tayori send` makes.
pub const SEND: &str = "send";

/// `tayori hold`: hold the pending issue.
pub const HOLD: &str = "hold";
/// `tayori release`: release (and approve) the pending issue; `args` may name the version.
pub const RELEASE: &str = "release";
pub use crate::store::NUDGE;

/// What the daemon answers `hold` / `release`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GateAnswer {
    /// False: no issue is pending (or the store failed: `message` says).
    pub done: bool,
    pub message: String,
}

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

/// A `send` request waiting for its answer.
pub(super) struct Asked {
    pub(super) id: i64,
    pub(super) retry_failed: bool,
    /// The issue the daemon was sending when the request came: the answer when the request's
    /// own round finds nothing more to send.
    pub(super) observed: Option<Summary>,
}

impl Loop {
    /// A request taken from the store: a `send` is served by the next issue thread, at once
    /// when none is running (after publishing what is due, as `send` does).
    pub(super) async fn requested(&mut self, d: &mut Daemon, stop: &CancellationToken, r: Request) {
        if matches!(r.kind.as_str(), HOLD | RELEASE | NUDGE) {
            return self.gate_request(d, stop, r).await;
        }
        if r.kind != SEND {
            let why = format!("this tayori run does not know the request `{}`", r.kind);
            tracing::warn!(request = r.id, "{why}");
            let answer = serde_json::to_string(&SendAnswer {
                retried: None,
                outcome: Err(why),
            })
            .unwrap_or_default();
            self.write_answers(d, vec![(r.id, answer)]).await;
            return;
        }
        let args: SendArgs = serde_json::from_str(&r.args).unwrap_or_default();
        self.asked.push(Asked {
            id: r.id,
            retry_failed: args.retry_failed,
            observed: None,
        });
        if self.running {
            tracing::info!(request = r.id, "send: after the issue being sent");
        } else {
            tracing::info!(request = r.id, "send: now");
            d.reconcile_logged().await;
            self.start(d, stop, Duration::ZERO);
        }
    }

    /// `hold`, `release` and `nudge`: done in the store at once; a release after a tick that
    /// passed sends now.
    async fn gate_request(&mut self, d: &mut Daemon, stop: &CancellationToken, r: Request) {
        let kind = r.kind.clone();
        let done = d
            .with_store(move |s| {
                let done = match kind.as_str() {
                    HOLD => s.hold()?,
                    RELEASE => s.release(None)?,
                    _ => true,
                };
                let go = kind != HOLD
                    && done
                    && s.gate(false)? == crate::store::Gate::Open
                    && s.take_tick_passed()?;
                Ok((done, go))
            })
            .await;
        let (answer, go) = match done {
            Ok((done, go)) => (
                GateAnswer {
                    done,
                    message: crate::editor::gate_message(&r.kind, done),
                },
                go,
            ),
            Err(e) => (
                GateAnswer {
                    done: false,
                    message: e.to_string(),
                },
                false,
            ),
        };
        tracing::info!(request = r.id, kind = %r.kind, done = answer.done, "{}", answer.message);
        let text = serde_json::to_string(&answer).unwrap_or_default();
        self.write_answers(d, vec![(r.id, text)]).await;
        if go && !self.running {
            tracing::info!("released after its tick: the issue goes now");
            d.reconcile_logged().await;
            self.start(d, stop, Duration::ZERO);
        } else if r.kind == NUDGE && self.issue_retry_at.is_some() && !self.running {
            // Mail works again: the issue that stopped is tried now, not at its retry time.
            tracing::info!("mail works again: trying the pending issue now");
            self.issue_retry_at = None;
            self.start(d, stop, Duration::ZERO);
        }
    }

    /// Answers the requests the round served.
    pub(super) async fn answer(&mut self, d: &mut Daemon, round: &Round) {
        let answers = std::mem::take(&mut self.serving)
            .into_iter()
            .map(|a| {
                let outcome = match &round.outcome {
                    Ok(_) if round.gated.is_some() => Err(round.gated.clone().unwrap_or_default()),
                    Ok(s) if s.issue.is_none() => Ok(a.observed.unwrap_or_else(|| s.clone())),
                    other => other.clone(),
                };
                let answer = SendAnswer {
                    retried: round.retried,
                    outcome,
                };
                (a.id, serde_json::to_string(&answer).unwrap_or_default())
            })
            .collect();
        self.write_answers(d, answers).await;
    }

    /// At shutdown: the requests no round served are answered "stopped early".
    pub(super) async fn answer_stopped(&mut self, d: &mut Daemon) {
        let why = "the daemon stopped before sending; what is unsent stays pending";
        let answers = std::mem::take(&mut self.asked)
            .into_iter()
            .chain(std::mem::take(&mut self.serving))
            .map(|a| {
                let answer = SendAnswer {
                    retried: None,
                    outcome: Err(why.into()),
                };
                (a.id, serde_json::to_string(&answer).unwrap_or_default())
            })
            .collect();
        self.write_answers(d, answers).await;
    }

    async fn write_answers(&mut self, d: &mut Daemon, answers: Vec<(i64, String)>) {
        if answers.is_empty() {
            return;
        }
        let written = d
            .with_store(move |s| {
                answers
                    .iter()
                    .try_for_each(|(id, a)| s.answer_request(*id, a, Utc::now()))
            })
            .await;
        if let Err(e) = written {
            tracing::error!("answering a request: {e}");
        }
    }
}
