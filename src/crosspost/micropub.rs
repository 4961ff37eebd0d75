//! Micropub (W3C Recommendation, 2017): create, update and delete posts on a blog that speaks
//! it, with a bearer token.
//!
//! Create is a JSON `h-entry` (§3.3.2) with `name`, `content` (HTML), `category` (tags),
//! `summary`, `published`, `mp-slug` and, for drafts, `post-status: draft`; the blog answers
//! 201 or 202 with the post's URL in `Location`, which the store keeps. An edit is
//! `action: update` with `replace` (§3.4.1), a deletion `action: delete` (§3.5).

use std::time::Duration;

use serde_json::json;

use super::queue::{json_body, Answer, Target};
use super::Mirror;
use crate::config::{Config, PostStatus};
use crate::store::{Shared, StoreError};

const TARGET: &str = Target::Micropub.name();

/// Makes the blog's copy of the post match the event.
pub(super) async fn sync(
    config: &Config,
    store: &Shared,
    http: &reqwest::Client,
    m: &Mirror,
) -> Result<Answer, StoreError> {
    let Some(mp) = &config.micropub else {
        return Ok(Answer::Retry("micropub: not configured".into()));
    };
    let Some(token) = mp.token() else {
        return Ok(Answer::Stop("no Micropub token".into()));
    };
    let slug = m.slug.clone();
    let known = store
        .call(move |s| s.remote_id(TARGET, &slug))
        .await?
        .map(|(id, _)| id);
    let body = match (m.action.as_str(), &known) {
        ("deleted", None) => return Ok(Answer::Done("nothing to delete".into())),
        ("deleted", Some(url)) => json!({ "action": "delete", "url": url }),
        (_, Some(url)) => json!({
            "action": "update",
            "url": url,
            "replace": {
                "name": [m.title],
                "content": [{ "html": m.html }],
                "summary": [m.summary],
                "category": m.tags,
            }
        }),
        (_, None) => {
            let mut props = json!({
                "name": [m.title],
                "content": [{ "html": m.html }],
                "summary": [m.summary],
                "category": m.tags,
                "published": [m.published_at],
                "mp-slug": [m.slug],
            });
            if mp.status == PostStatus::Draft {
                props["post-status"] = json!(["draft"]);
            }
            json!({ "type": ["h-entry"], "properties": props })
        }
    };
    let sent = http
        .post(&mp.endpoint)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) => return Ok(Answer::Retry(format!("error: {e}"))),
    };
    let status = r.status();
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // The error body is JSON with `error` and `error_description` (§4.1).
    let detail = json_body(r).await;
    let detail = format!(
        "{} {}",
        detail["error"].as_str().unwrap_or(""),
        detail["error_description"].as_str().unwrap_or("")
    );
    let outcome = Answer::of_status(status, detail.trim(), "the Micropub endpoint");
    if let Answer::Done(_) = outcome {
        let slug = m.slug.clone();
        match (m.action.as_str(), known, location) {
            ("deleted", _, _) => {
                store
                    .call(move |s| s.set_remote_id(TARGET, &slug, None))
                    .await?
            }
            (_, None, Some(url)) => {
                store
                    .call(move |s| s.set_remote_id(TARGET, &slug, Some((&url, Some(&url)))))
                    .await?
            }
            _ => {}
        }
    }
    Ok(outcome)
}
