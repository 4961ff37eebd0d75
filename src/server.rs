//! The HTTP server (axum): feeds and archive from `public/`, one-click unsubscribe, health.
//!
//! `GET /unsubscribe/<token>` only shows a page with a confirm button — link scanners fetch
//! URLs, so a GET never unsubscribes. `POST /unsubscribe/<token>` is RFC 8058 one-click: the
//! address is suppressed at once and the answer is 200. A token that does not verify gets 404
//! and changes nothing. `GET /preview` answers loopback clients only, and shows a made-up
//! reader. The server takes an already-bound listener (tests bind port 0) and stops when its
//! cancellation token fires.
//!
//! Slow clients cannot starve it: a request's headers must arrive within [`HEADER_TIMEOUT`], a
//! connection lives at most [`CONNECTION_LIFETIME`], and at most [`MAX_CONNECTIONS`] are served
//! at once (the rest wait in the kernel's accept queue).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::html;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::deliver::next_issue::Next;
use crate::store::Store;
use crate::unsubscribe::Key;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub root: PathBuf,
    pub config: Arc<Config>,
    pub key: Key,
    /// The sign-up form's per-client limit.
    pub signup: Arc<crate::signup::Limits>,
}

impl AppState {
    pub fn new(root: &Path, config: Arc<Config>, key: Key) -> AppState {
        AppState {
            root: root.to_path_buf(),
            config,
            key,
            signup: Arc::default(),
        }
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
        .route(
            "/editor/{action}/{token}",
            get(crate::editor::pages::show).post(crate::editor::pages::act),
        )
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

/// Serves until `stop` fires; requests in flight finish first (for up to 10 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut app.clone(), req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "stopping: requests still open after {}s were cut",
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
    if slug.is_empty()
        || !slug
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
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
    let Ok(bytes) = tokio::fs::read(path).await else {
        return not_found();
    };
    let digest = Sha256::digest(&bytes);
    let etag = format!("\"{}\"", crate::content::hex(&digest[..16]));
    let modified: Option<SystemTime> = tokio::fs::metadata(path)
        .await
        .ok()
        .and_then(|m| m.modified().ok());
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
        let mut r = bytes.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        return not_found();
    }
    let (root, config) = (s.root.clone(), s.config.clone());
    let next = tokio::task::spawn_blocking(move || {
        let approval = config.editor.as_ref().is_some_and(|e| e.approval);
        let gate = Store::open_read_only(&root)
            .ok()
            .flatten()
            .and_then(|st| crate::editor::gate_note(&st, approval));
        crate::deliver::next_issue::next_issue(&root, &config).map(|n| (n, gate))
    })
    .await;
    let (rendered, gate) = match next {
        Ok(Ok((Next::New { rendered, .. } | Next::Resume { rendered, .. }, gate))) => {
            (rendered, gate)
        }
        Ok(Ok((Next::Nothing | Next::FirstStart, _))) => {
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
    let url = format!("{}/unsubscribe/preview", s.config.public_base());
    let html_part = crate::render::email::personalize(&rendered.html, name, &url, true);
    let text_part = crate::render::email::personalize(&rendered.text, name, &url, false);
    page(&s.config, "次号のプレビュー", html! {
        h1 { "次号のプレビュー" }
        @if let Some(g) = gate { p { strong { (g) } } }
        p { "件名: " strong { (rendered.subject) } }
        p { "宛先の例: " (name) " <" (email) ">（送信前の確認用。配信はされません）" }
        h2 { "HTML メール" }
        iframe title="HTML メールのプレビュー" srcdoc=(html_part) style="width: 100%; height: 1200px; border: 1px solid #cccccc;" {}
        h2 { "テキスト版" }
        pre style="white-space: pre-wrap; font-size: 14px;" { (text_part) }
    })
    .into_response()
}

async fn unsubscribe_page(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let Some(address) = s.key.verify(&token) else {
        return not_found();
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
    let Some(address) = s.key.verify(&token) else {
        return not_found();
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
