//! `GET` and `POST /unsubscribe/<token>`: a page with a button, and RFC 8058 one-click.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{not_found, page, AppState};
use crate::store::Store;
use crate::unsubscribe::Key;

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

pub(super) async fn show(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
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

pub(super) async fn now(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
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
