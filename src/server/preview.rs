//! `GET /preview`: the next issue as it will be sent, to this machine only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{not_found, page, unsubscribe_url, AppState, Link};
use crate::deliver::next_issue::Next;
use crate::store::Store;

/// The next issue exactly as it will be sent, addressed to a made-up reader whose unsubscribe
/// link does nothing: subject, the HTML part in a frame, the text part below. Only for clients
/// on the loopback interface: the attorney's own machine.
pub(super) async fn preview(
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
    let next = tokio::task::spawn_blocking(move || {
        let approval = config.editor.as_ref().is_some_and(|e| e.approval);
        // Whether the issue is held or awaits approval: a note on the page, nothing more.
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
    let url = unsubscribe_url(&s.config.public_base(), Link::Sample("preview"));
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
