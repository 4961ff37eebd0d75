//! The proof's links: `GET /editor/hold/<token>` and `GET /editor/approve/<token>` show a page
//! with one button and change nothing (mail scanners open every link; HEAD is a GET without
//! its body); `POST` acts. A token of an older version of the issue (a post changed since the
//! proof) answers 404 with a page saying the proof is outdated.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::html;

use super::{page, AppState};
use crate::store::NUDGE;
use crate::store::{signups::digest, Store};

/// What a token is for, found.
enum Found {
    Current,
    Outdated,
    Unknown,
}

fn find(store: &Store, action: &str, token: &str) -> anyhow::Result<Found> {
    let Some(version) = store.editor_token(&digest(token), action)? else {
        return Ok(Found::Unknown);
    };
    let current = store.pending_version()?.map(|(v, _)| v);
    Ok(if current.as_deref() == Some(version.as_str()) {
        Found::Current
    } else {
        Found::Outdated
    })
}

fn words(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "hold" => Some(("次号を保留にする", "保留にする")),
        "approve" => Some(("次号を承認する", "承認して配信する")),
        _ => None,
    }
}

/// `GET /editor/<action>/<token>`: the page with its button.
pub async fn show(
    State(s): State<AppState>,
    UrlPath((action, token)): UrlPath<(String, String)>,
) -> Response {
    let Some((title, button)) = words(&action) else {
        return invalid(&s, false);
    };
    let root = s.root.clone();
    let (a, t) = (action.clone(), token.clone());
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Found> {
        match Store::open_read_only(&root)? {
            Some(store) => find(&store, &a, &t),
            None => Ok(Found::Unknown),
        }
    })
    .await;
    match found {
        Ok(Ok(Found::Current)) => {}
        Ok(Ok(Found::Outdated)) => return invalid(&s, true),
        Ok(Ok(Found::Unknown)) => return invalid(&s, false),
        other => return unavailable(other.map(|_| ())),
    }
    let what = if action == "hold" {
        "このボタンを押すと次号の配信を保留にします。配信予定の時刻が来ても送られません（tayori release で再開できます）。"
    } else {
        "このボタンを押すと、校正メールでご覧になった内容のまま次号を承認します。配信予定の時刻に読者へ送られます（時刻を過ぎていればすぐに送られます）。"
    };
    page(
        &s.config,
        title,
        html! {
            h1 { (title) }
            p { (what) }
            form method="post" action={ "/editor/" (action) "/" (token) } {
                button type="submit" style="font-size: 16px; padding: 8px 16px;" { (button) }
            }
        },
    )
    .into_response()
}

/// `POST /editor/<action>/<token>`: holds or approves that version of the issue.
pub async fn act(
    State(s): State<AppState>,
    UrlPath((action, token)): UrlPath<(String, String)>,
) -> Response {
    if words(&action).is_none() {
        return invalid(&s, false);
    }
    let root = s.root.clone();
    let a = action.clone();
    let done = tokio::task::spawn_blocking(move || -> anyhow::Result<Found> {
        let store = Store::open(&root)?;
        let Some(version) = store.editor_token(&digest(&token), &a)? else {
            return Ok(Found::Unknown);
        };
        let applied = if a == "hold" {
            store.pending_version()?.is_some_and(|(v, _)| v == version) && store.hold()?
        } else {
            store.release(Some(&version))?
        };
        if !applied {
            return Ok(Found::Outdated);
        }
        // A running daemon sends at once if the tick passed while it waited.
        store.request(NUDGE, "{}", Utc::now())?;
        Ok(Found::Current)
    })
    .await;
    match done {
        Ok(Ok(Found::Current)) => {}
        Ok(Ok(Found::Outdated)) => return invalid(&s, true),
        Ok(Ok(Found::Unknown)) => return invalid(&s, false),
        other => return unavailable(other.map(|_| ())),
    }
    tracing::info!(action = %action, "an editor acted on the proof");
    let (title, said) = if action == "hold" {
        ("保留にしました", "次号は保留になりました。配信予定の時刻が来ても送られません。再開するには tayori release を実行してください。")
    } else {
        ("承認しました", "次号を承認しました。配信予定の時刻に読者へ送られます（時刻を過ぎていればすぐに送られます）。")
    };
    page(&s.config, title, html! { h1 { (title) } p { (said) } }).into_response()
}

fn invalid(s: &AppState, outdated: bool) -> Response {
    let said = if outdated {
        "この校正は古くなりました（その後に記事が変わったか、すでに配信されました）。新しい校正メールのリンクをお使いください。"
    } else {
        "このリンクは正しくありません。"
    };
    let body = page(
        &s.config,
        "リンクが無効です",
        html! { h1 { "リンクが無効です" } p { (said) } },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

fn unavailable<E: std::fmt::Debug>(e: E) -> Response {
    tracing::error!("editor page: {e:?}");
    (StatusCode::SERVICE_UNAVAILABLE, "please try again later\n").into_response()
}
