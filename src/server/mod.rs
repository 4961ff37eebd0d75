//! The HTTP server (axum): feeds, archive and pictures from `public/`, one-click unsubscribe,
//! health.
//!
//! `GET /unsubscribe/<token>` only shows a page with a confirm button — link scanners fetch
//! URLs, so a GET (or HEAD) never unsubscribes. `POST /unsubscribe/<token>` is RFC 8058
//! one-click: the address is suppressed at once and the answer is 200. The token is opaque
//! (nothing of the address inside) and resolved through the store; links of the older format
//! (the address with its MAC) still work. A token that does not resolve gets 404 and changes
//! nothing. Every unsubscribe link is made by [`unsubscribe_url`]. `GET /preview` answers
//! only a loopback peer whose request carries no forwarding header (behind a reverse proxy on
//! the same machine every peer is loopback), and shows a made-up reader. The server takes an
//! already-bound listener (tests bind port 0) and stops when its cancellation token fires,
//! letting sign-up emails in flight finish (or stay queued for the next start).
//!
//! Slow clients cannot starve it: a request's head must arrive within [`HEADER_TIMEOUT`] and
//! its body within [`BODY_TIMEOUT`] after that, a connection lives at most
//! [`CONNECTION_LIFETIME`], one client (an IPv4 address, an IPv6 /64; not
//! `server.trusted_proxy`) holds at most [`PER_CLIENT_CONNECTIONS`] connections (more are
//! closed at once), and at most [`MAX_CONNECTIONS`] are served at once (the rest wait in the
//! kernel's accept queue).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::unsubscribe::Key;

mod connections;
mod editor;
mod files;
mod preview;
mod search;
pub mod signup;
mod unsubscribe;
pub use connections::{client_key, BODY_TIMEOUT, MAX_BODY, PER_CLIENT_CONNECTIONS};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub root: PathBuf,
    pub config: Arc<Config>,
    pub key: Key,
    /// The sign-up form's per-client limit.
    pub signup: Arc<signup::Limits>,
    /// Work the handlers start in the background (sign-up emails); [`serve`] waits for it.
    pub tasks: TaskTracker,
    /// Wakes the sender of queued sign-up confirmations.
    pub confirmations: Arc<Notify>,
}

impl AppState {
    pub fn new(root: &Path, config: Arc<Config>, key: Key) -> AppState {
        AppState {
            root: root.to_path_buf(),
            config,
            key,
            signup: Arc::default(),
            tasks: TaskTracker::new(),
            confirmations: Arc::default(),
        }
    }
}

pub use crate::unsubscribe::{unsubscribe_url, Link};

/// The routes (docs/http-and-webhook.md).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/feed.xml", get(files::rss))
        .route("/atom.xml", get(files::atom))
        .route("/feed.json", get(files::json_feed))
        .route("/", get(files::index))
        .route("/posts/{file}", get(files::post_page))
        .route("/archive/{file}", get(files::year_page))
        .route("/media/{file}", get(files::media))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::show).post(unsubscribe::now),
        )
        .route("/preview", get(preview::preview))
        .route(
            "/editor/{action}/{token}",
            get(editor::show).post(editor::act),
        )
        .route("/search", get(search::search))
        .route("/subscribe", get(signup::form_page).post(signup::request))
        .route(
            "/subscribe/confirm/{token}",
            get(signup::confirm_page).post(signup::confirm),
        )
        .with_state(state)
}

/// A request's headers must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this, however busy (feed readers reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections served at once. Far above what an office's readers need, and well under a
/// 1,024-file limit, so publishing always has descriptors left.
pub const MAX_CONNECTIONS: usize = 256;
/// How long requests in flight may take to finish once `stop` fires.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves until `stop` fires; requests in flight and sign-up emails being sent finish first
/// (for up to 10 s). With `subscribe:` set, queued sign-up confirmations are sent meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    if state.config.subscribe.is_some() {
        state.tasks.spawn(signup::confirmations::run(
            state.root.clone(),
            state.config.clone(),
            state.key.clone(),
            state.confirmations.clone(),
            stop.clone(),
        ));
    }
    let tasks = state.tasks.clone();
    let trusted_proxy = state.config.server.trusted_proxy.map(|p| p.to_canonical());
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client = connections::ClientSlots::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.map_err(std::io::Error::other)?,
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like pass: wait, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let client_slot = if Some(peer.ip().to_canonical()) == trusted_proxy {
            None
        } else {
            match per_client.take(client_key(peer.ip())) {
                Some(s) => Some(s),
                None => {
                    tracing::debug!(%peer, "connection closed: too many from this client");
                    continue; // dropping `tcp` closes it
                }
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let mut app = app.clone();
            async move {
                let mut req = match connections::read_body(req).await {
                    Ok(req) => req,
                    Err(answer) => return Ok(answer),
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                tower_service::Service::call(&mut app, req).await
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slots = (slot, client_slot);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
    drop(listener);
    tasks.close();
    let drained = async {
        graceful.shutdown().await;
        tasks.wait().await;
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!(
            "stopping: requests or sign-up emails still open after {}s were cut (unsent confirmations stay queued)",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// A page in the archive's look.
pub(crate) fn page(config: &Config, title: &str, body: maud::Markup) -> Html<String> {
    let title = format!("{title} | {}", config.site.title);
    Html(crate::render::archive::page(
        config,
        &title,
        crate::render::DEFAULT_CSS,
        body,
    ))
}
