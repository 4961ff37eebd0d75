//! The HTTP server (axum): feeds and archive from `public/`, one-click unsubscribe, health.
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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::html;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::deliver::next_issue::Next;
use crate::store::Store;
use crate::unsubscribe::Key;

mod connections;
pub use connections::{client_key, BODY_TIMEOUT, MAX_BODY, PER_CLIENT_CONNECTIONS};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub root: PathBuf,
    pub config: Arc<Config>,
    pub key: Key,
    /// The sign-up form's per-client limit.
    pub signup: Arc<crate::signup::Limits>,
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

/// Whose unsubscribe link an email carries.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    /// A reader's: `/unsubscribe/<opaque token>`.
    Reader(&'a Key, &'a str),
    /// A made-up reader's (`preview`, `test`): a link that unsubscribes nobody.
    Sample(&'static str),
}

/// The unsubscribe URL under `public_base` ([`Config::public_base`]): the one place links to
/// `/unsubscribe/<token>` are made.
pub fn unsubscribe_url(public_base: &str, link: Link<'_>) -> String {
    match link {
        Link::Reader(key, address) => format!("{public_base}/unsubscribe/{}", key.token(address)),
        Link::Sample(name) => format!("{public_base}/unsubscribe/{name}"),
    }
}

/// The routes (docs/http-and-webhook.md).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/feed.xml", get(rss))
        .route("/atom.xml", get(atom))
        .route("/feed.json", get(json_feed))
        .route("/", get(index))
        .route("/posts/{file}", get(post_page))
        .route("/archive/{file}", get(year_page))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe_now),
        )
        .route("/preview", get(preview))
        .route("/search", get(search))
        .route(
            "/subscribe",
            get(crate::signup::form_page).post(crate::signup::request),
        )
        .route(
            "/subscribe/confirm/{token}",
            get(crate::signup::confirm_page).post(crate::signup::confirm),
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
        state.tasks.spawn(crate::signup::confirmations::run(
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

/// Keeps the reader count a feed fetcher gives in its `User-Agent` (see [`crate::readers`]);
/// off the runtime, and never in the way of the answer.
async fn count_readers(s: &AppState, feed: &'static str, headers: &HeaderMap) {
    let Some(ua) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|ua| crate::readers::parse_user_agent(ua).is_some())
    else {
        return;
    };
    let (root, ua) = (s.root.clone(), ua.to_string());
    match tokio::task::spawn_blocking(move || crate::readers::record(&root, feed, &ua)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("feed readers not counted: {e}"),
        Err(e) => tracing::warn!("feed readers not counted: {e}"),
    }
}

async fn rss(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "feed.xml", &headers).await;
    file(
        &s.root.join("public/feed.xml"),
        "application/rss+xml; charset=utf-8",
        &headers,
    )
    .await
}

async fn atom(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "atom.xml", &headers).await;
    file(
        &s.root.join("public/atom.xml"),
        "application/atom+xml; charset=utf-8",
        &headers,
    )
    .await
}

async fn json_feed(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "feed.json", &headers).await;
    file(
        &s.root.join("public/feed.json"),
        "application/feed+json; charset=utf-8",
        &headers,
    )
    .await
}

async fn index(State(s): State<AppState>, headers: HeaderMap) -> Response {
    file(
        &s.root.join("public/index.html"),
        "text/html; charset=utf-8",
        &headers,
    )
    .await
}

async fn post_page(
    State(s): State<AppState>,
    UrlPath(file_name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(slug) = file_name.strip_suffix(".html") else {
        return not_found();
    };
    if !crate::text::is_name(slug) {
        return not_found();
    }
    file(
        &s.root.join("public/posts").join(file_name.as_str()),
        "text/html; charset=utf-8",
        &headers,
    )
    .await
}

/// `archive/<year>.html`: one year of the archive; `archive/<year>.xml`: that year's Atom
/// archive document (RFC 5005 §4).
async fn year_page(
    State(s): State<AppState>,
    UrlPath(file_name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let (year, content_type) = match file_name.rsplit_once('.') {
        Some((y, "html")) => (y, "text/html; charset=utf-8"),
        Some((y, "xml")) => (y, "application/atom+xml; charset=utf-8"),
        _ => return not_found(),
    };
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return not_found();
    }
    file(
        &s.root.join("public/archive").join(file_name.as_str()),
        content_type,
        &headers,
    )
    .await
}

/// A generated file with `ETag` and `Last-Modified`, answering conditional requests with 304.
async fn file(path: &Path, content_type: &'static str, req: &HeaderMap) -> Response {
    // Streamed from an open descriptor, never read whole: slow readers of a big file cost a
    // buffer each, not the file. The validators come from that descriptor's stamp (inode,
    // size, modification time), as nginx's do: every rewrite is a rename, so a new version has
    // a new inode.
    let Ok(f) = tokio::fs::File::open(path).await else {
        return not_found();
    };
    let Ok(meta) = f.metadata().await else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let modified = meta.modified().ok();
    let etag = {
        use std::os::unix::fs::MetadataExt;
        let stamp = format!(
            "{}:{}:{}:{}",
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        format!(
            "\"{}\"",
            crate::content::hex(&Sha256::digest(stamp.as_bytes())[..16])
        )
    };
    let last_modified = modified.map(httpdate::fmt_http_date);
    let not_modified = match req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(inm) => inm.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        None => match (
            req.get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok()),
            modified,
        ) {
            (Some(ims), Some(m)) => httpdate::parse_http_date(ims)
                .map(|since| m.duration_since(since).map_or(true, |d| d.as_secs() < 1))
                .unwrap_or(false),
            _ => false,
        },
    };
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f));
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        r
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(v) = last_modified.and_then(|l: String| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// The query of `GET /search?q=…`.
#[derive(serde::Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=…`: every post containing all the words, newest first, with the passage
/// around the first word (see [`crate::search`]). The store is read off the runtime.
async fn search(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<SearchQuery>,
) -> Response {
    let root = s.root.clone();
    let query = q.q.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        match Store::open_read_only(&root)? {
            Some(store) => crate::search::search(&store, &query),
            None => Ok((Vec::new(), false)),
        }
    })
    .await;
    let (hits, more) = match found {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::error!("search: {e}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "search is not available now\n",
            )
                .into_response();
        }
        Err(e) => {
            tracing::error!("search: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let shown: String = q.q.chars().take(crate::search::MAX_QUERY_CHARS).collect();
    let searched = !crate::search::terms(&shown).is_empty();
    let tz = s.config.tz();
    page(
        &s.config,
        "記事の検索",
        html! {
            h1 { "記事の検索" }
            (crate::render::archive::search_box(&s.config, &shown))
            @if searched {
                @if more {
                p { "「" (shown) "」を含む記事のうち、新しい" (hits.len()) "件です。言葉を足すと絞り込めます。" }
            } @else {
                p { "「" (shown) "」を含む記事: " (hits.len()) "件" }
            }
                @for h in &hits {
                    article class="search-hit" {
                        h2 { a href=(h.url) { (h.title) } }
                        p class="date" { (published_day(&h.published_at, &tz)) }
                        p { (h.passage) }
                    }
                }
            }
        },
    )
    .into_response()
}

/// `2026年11月9日` for an RFC 3339 time, in the site's zone.
fn published_day(rfc3339: &str, tz: &chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| crate::render::display_date(&d, tz))
        .unwrap_or_default()
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

/// The next issue exactly as it will be sent, addressed to a made-up reader whose unsubscribe
/// link does nothing: subject, the HTML part in a frame, the text part below. Only for clients
/// on the loopback interface: the attorney's own machine.
async fn preview(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // A reverse proxy on this machine connects from loopback for everyone: a request it
    // forwarded says so in one of these, and is no more the attorney's than any other.
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if !peer.ip().to_canonical().is_loopback() || forwarded {
        return not_found();
    }
    let (root, config) = (s.root.clone(), s.config.clone());
    let next =
        tokio::task::spawn_blocking(move || crate::deliver::next_issue::next_issue(&root, &config))
            .await;
    let rendered = match next {
        Ok(Ok(Next::New { rendered, .. } | Next::Resume { rendered, .. })) => rendered,
        Ok(Ok(Next::Nothing | Next::FirstStart)) => {
            return page(&s.config, "次号のプレビュー", html! {
                h1 { "次号のプレビュー" }
                p { "前号以降に公開された記事はまだありません。posts/ に記事を置くと、ここに次号が表示されます。" }
            })
            .into_response()
        }
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let (email, name) = crate::deliver::next_issue::SAMPLE_READER;
    let url = unsubscribe_url(&s.config.public_base(), Link::Sample("preview"));
    let html_part = crate::render::email::personalize(&rendered.html, name, &url, true);
    let text_part = crate::render::email::personalize(&rendered.text, name, &url, false);
    page(&s.config, "次号のプレビュー", html! {
        h1 { "次号のプレビュー" }
        p { "件名: " strong { (rendered.subject) } }
        p { "宛先の例: " (name) " <" (email) ">（送信前の確認用。配信はされません）" }
        h2 { "HTML メール" }
        iframe title="HTML メールのプレビュー" srcdoc=(html_part) style="width: 100%; height: 1200px; border: 1px solid #cccccc;" {}
        h2 { "テキスト版" }
        pre style="white-space: pre-wrap; font-size: 14px;" { (text_part) }
    })
    .into_response()
}

/// The address a token in an unsubscribe link stands for: an opaque token through the store,
/// an old one by its MAC. `Err` is a store failure (503), never "not found".
async fn resolve(s: &AppState, token: &str) -> Result<Option<String>, Response> {
    if !Key::is_opaque(token) {
        return Ok(s.key.verify(token));
    }
    let (root, key, token) = (s.root.clone(), s.key.clone(), token.to_string());
    let found = tokio::task::spawn_blocking(move || {
        Store::open(&root)?.unsubscribe_address(&token, |a| key.token(a))
    })
    .await;
    match found {
        Ok(Ok(address)) => Ok(address),
        other => {
            tracing::error!("unsubscribe token not looked up: {other:?}");
            Err((StatusCode::SERVICE_UNAVAILABLE, "please try again later\n").into_response())
        }
    }
}

async fn unsubscribe_page(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let address = match resolve(&s, &token).await {
        Ok(Some(address)) => address,
        Ok(None) => return not_found(),
        Err(answer) => return answer,
    };
    page(
        &s.config,
        "配信停止の確認",
        html! {
            h1 { "配信停止の確認" }
            p { (address) " への配信を停止します。よろしければ下のボタンを押してください。" }
            form method="post" action={ "/unsubscribe/" (token) } {
                input type="hidden" name="List-Unsubscribe" value="One-Click";
                button type="submit" { "配信を停止する" }
            }
        },
    )
    .into_response()
}

async fn unsubscribe_now(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let address = match resolve(&s, &token).await {
        Ok(Some(address)) => address,
        Ok(None) => return not_found(),
        Err(answer) => return answer,
    };
    let root = s.root.clone();
    let addr = address.clone();
    let stored = tokio::task::spawn_blocking(move || {
        Store::open(&root).and_then(|store| {
            let now = chrono::Utc::now();
            store.unsubscribe_signup(&addr, now)?;
            store.suppress(&addr, "unsubscribed (one-click)", now)
        })
    })
    .await;
    match stored {
        Ok(Ok(_)) => {
            tracing::info!(%address, "unsubscribed");
            page(
                &s.config,
                "配信を停止しました",
                html! {
                    h1 { "配信を停止しました" }
                    p { (address) " への配信を停止しました。これまでご購読いただき、ありがとうございました。" }
                },
            )
            .into_response()
        }
        other => {
            tracing::error!(%address, "unsubscribe not stored: {other:?}");
            (StatusCode::SERVICE_UNAVAILABLE, "please try again later\n").into_response()
        }
    }
}
