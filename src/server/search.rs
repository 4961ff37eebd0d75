//! `GET /search?q=…`: the archive's search page (the index is [`crate::search`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{page, AppState};
use crate::store::Store;

/// The query of `GET /search?q=…`.
#[derive(serde::Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=…`: every post containing all the words, newest first, with the passage
/// around the first word (see [`crate::search`]). The store is read off the runtime.
pub(super) async fn search(
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
