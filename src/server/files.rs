//! Generated files from `public/`: feeds, the archive's pages, streamed with `ETag` and
//! `Last-Modified` (conditional GET answered with 304), and the feed-reader counts their
//! fetchers give.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{not_found, AppState};

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

pub(super) async fn rss(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "feed.xml", &headers).await;
    file(
        &s.root.join("public/feed.xml"),
        "application/rss+xml; charset=utf-8",
        &headers,
    )
    .await
}

pub(super) async fn atom(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "atom.xml", &headers).await;
    file(
        &s.root.join("public/atom.xml"),
        "application/atom+xml; charset=utf-8",
        &headers,
    )
    .await
}

pub(super) async fn json_feed(State(s): State<AppState>, headers: HeaderMap) -> Response {
    count_readers(&s, "feed.json", &headers).await;
    file(
        &s.root.join("public/feed.json"),
        "application/feed+json; charset=utf-8",
        &headers,
    )
    .await
}

pub(super) async fn index(State(s): State<AppState>, headers: HeaderMap) -> Response {
    file(
        &s.root.join("public/index.html"),
        "text/html; charset=utf-8",
        &headers,
    )
    .await
}

pub(super) async fn post_page(
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
pub(super) async fn year_page(
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

/// `media/<hash>.<jpg|png>`: a post's picture. Its name is a hash of its content, so it never
/// changes: cached for a year (`immutable`, RFC 8246).
pub(super) async fn media(
    State(s): State<AppState>,
    UrlPath(file_name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let (hash, content_type) = match file_name.rsplit_once('.') {
        Some((h, "jpg")) => (h, "image/jpeg"),
        Some((h, "png")) => (h, "image/png"),
        _ => return not_found(),
    };
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let mut resp = file(
        &s.root.join("public/media").join(file_name.as_str()),
        content_type,
        &headers,
    )
    .await;
    if matches!(resp.status(), StatusCode::OK | StatusCode::NOT_MODIFIED) {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    resp
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
