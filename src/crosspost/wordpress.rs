//! WordPress through its REST API (`/wp-json/wp/v2/`), HTTP Basic with an application
//! password (WordPress 5.6+).
//!
//! Each queued event carries the post as it now is ([`Mirror`]); the WordPress id of the post is
//! kept in the store, so an edit updates that post (`POST /posts/<id>`) and a deletion trashes it
//! (`DELETE /posts/<id>`, without `force`). Before creating, the blog is asked for a post with
//! our slug: an attempt whose answer was lost never makes a second copy. Tags are found by name
//! or created. Each picture of a post is uploaded to the blog's media library once
//! (`POST /media`), remembered in the store by its name, and the post's copy shows the blog's
//! URL of it: the blog never depends on the newsletter's server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::queue::{json_body, Answer, Target};
use super::Mirror;
use crate::config::{Config, WordPress};
use crate::store::{Shared, StoreError};

const TARGET: &str = Target::WordPress.name();
/// The store's name for the blog's copies of our pictures (by picture name).
const MEDIA: &str = "wordpress.media";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Makes WordPress's copy of the post match the event.
pub(super) async fn sync(
    root: &std::path::Path,
    config: &Config,
    store: &Shared,
    http: &reqwest::Client,
    mirror: &Mirror,
) -> Result<Answer, StoreError> {
    let Some(wp) = &config.wordpress else {
        return Ok(Answer::Retry("wordpress: not configured".into()));
    };
    let Some(password) = wp.password() else {
        return Ok(Answer::Stop("TAYORI_WORDPRESS_PASSWORD is not set".into()));
    };
    let api = Api { wp, password, http };
    let slug = mirror.slug.clone();
    let known = store
        .call(move |s| s.remote_id(TARGET, &slug))
        .await?
        .map(|(id, _)| id);
    // WordPress reads a wrong application password as no login at all, and then answers
    // other things than 401 (a 400 for a draft query): ask who we are first.
    if let Err(outcome) = api.whoami().await {
        return Ok(outcome);
    }
    let result = if mirror.action == "deleted" {
        api.trash(known.as_deref()).await
    } else {
        match api.pictures(root, config, store, mirror).await? {
            Ok(mirror) => api.upsert(&mirror, known.as_deref()).await,
            Err(outcome) => Err(outcome),
        }
    };
    let slug = mirror.slug.clone();
    Ok(match result {
        Ok(Synced::Kept { id, link }) => {
            let done = Answer::Done(format!("post {id}"));
            store
                .call(move |s| s.set_remote_id(TARGET, &slug, Some((&id, link.as_deref()))))
                .await?;
            done
        }
        Ok(Synced::Trashed(status)) => {
            store
                .call(move |s| s.set_remote_id(TARGET, &slug, None))
                .await?;
            Answer::Done(status)
        }
        Err(outcome) => outcome,
    })
}

enum Synced {
    /// The post's id and link on the blog.
    Kept {
        id: String,
        link: Option<String>,
    },
    Trashed(String),
}

struct Api<'a> {
    wp: &'a WordPress,
    password: String,
    http: &'a reqwest::Client,
}

impl Api<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.query(method, path, &[])
    }

    /// A request with query parameters, encoded by `url`.
    fn query(
        &self,
        method: reqwest::Method,
        path: &str,
        q: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut url = format!("{}{path}", self.wp.api());
        if !q.is_empty() {
            url.push('?');
            url.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(q)
                    .finish(),
            );
        }
        self.http
            .request(method, url)
            .basic_auth(&self.wp.user, Some(&self.password))
            .timeout(TIMEOUT)
    }

    /// Sends a request; a 2xx gives the JSON body, anything else the outcome to record.
    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, Answer> {
        let r = req
            .send()
            .await
            .map_err(|e| Answer::Retry(format!("error: {e}")))?;
        let status = r.status();
        let body = json_body(r).await;
        if status.is_success() {
            return Ok(body);
        }
        // WordPress explains itself in `code` and `message`.
        let detail = format!(
            "{} {}",
            body["code"].as_str().unwrap_or(""),
            body["message"].as_str().unwrap_or("")
        );
        Err(Answer::of_status(status, detail.trim(), what))
    }

    async fn upsert(&self, m: &Mirror, known: Option<&str>) -> Result<Synced, Answer> {
        let tags = self.tag_ids(&m.tags).await?;
        let mut payload = json!({
            "title": m.title,
            "content": m.html,
            "excerpt": m.summary,
            "status": self.wp.status.as_str(),
            "slug": m.slug,
            "tags": tags,
        });
        if let Ok(t) = DateTime::parse_from_rfc3339(&m.published_at) {
            let utc = t
                .with_timezone(&Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            payload["date_gmt"] = json!(utc);
        }
        let id = match known {
            Some(id) => Some(id.to_string()),
            None => self.find_ours(m).await?,
        };
        let body = payload.to_string();
        let post = |path: String| {
            self.request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .body(body.clone())
        };
        let created = match id {
            Some(id) => match self.call(post(format!("posts/{id}")), "WordPress").await {
                // Deleted on the blog meanwhile: make it again.
                Err(Answer::Retry(s)) if s.starts_with("404") => None,
                other => Some(other?),
            },
            None => None,
        };
        let post = match created {
            Some(p) => p,
            None => self.call(post("posts".into()), "WordPress").await?,
        };
        match post["id"].as_u64() {
            Some(id) => Ok(Synced::Kept {
                id: id.to_string(),
                link: post["link"].as_str().map(str::to_string),
            }),
            None => Err(Answer::Retry("WordPress answered without a post id".into())),
        }
    }

    /// The mirror with each of its pictures' URLs replaced by the blog's copy of it, uploading
    /// those the blog does not have yet.
    async fn pictures(
        &self,
        root: &std::path::Path,
        config: &Config,
        store: &Shared,
        mirror: &Mirror,
    ) -> Result<Result<Mirror, Answer>, StoreError> {
        let mut mirror = mirror.clone();
        for name in mirror.pictures.clone() {
            let key = name.clone();
            let known = store
                .call(move |s| s.remote_id(MEDIA, &key))
                .await?
                .and_then(|(_, url)| url);
            let url = match known {
                Some(url) => url,
                None => match self.upload(root, &name).await {
                    Ok((id, url)) => {
                        let (key, u) = (name.clone(), url.clone());
                        store
                            .call(move |s| s.set_remote_id(MEDIA, &key, Some((&id, Some(&u)))))
                            .await?;
                        url
                    }
                    Err(outcome) => return Ok(Err(outcome)),
                },
            };
            let ours = format!("{}/media/{name}", config.public_base());
            mirror.html = mirror.html.replace(&ours, &url);
        }
        Ok(Ok(mirror))
    }

    /// Uploads `public/media/<name>` to the media library: its id and `source_url`.
    async fn upload(&self, root: &std::path::Path, name: &str) -> Result<(String, String), Answer> {
        let path = root.join("public").join("media").join(name);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Answer::Retry(format!("{}: {e}", path.display())))?;
        let content_type = if name.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let req = self
            .request(reqwest::Method::POST, "media")
            .header("content-type", content_type)
            .header(
                "content-disposition",
                format!("attachment; filename=\"{name}\""),
            )
            .body(bytes);
        let made = self.call(req, "WordPress").await?;
        match (made["id"].as_u64(), made["source_url"].as_str()) {
            (Some(id), Some(url)) => Ok((id.to_string(), url.to_string())),
            _ => Err(Answer::Retry(format!(
                "WordPress took the picture {name} without giving its id and URL"
            ))),
        }
    }

    /// Checks the login: 401 when the user or application password is wrong.
    async fn whoami(&self) -> Result<(), Answer> {
        let req = self.query(reqwest::Method::GET, "users/me", &[("context", "edit")]);
        self.call(req, "WordPress").await.map(|_| ())
    }

    /// A post of ours already there (an earlier attempt whose answer was lost): the slug and
    /// the title must both be ours, so a post somebody wrote on the blog is never taken over.
    async fn find_ours(&self, m: &Mirror) -> Result<Option<String>, Answer> {
        let slug = m.slug.as_str();
        let req = self.query(
            reqwest::Method::GET,
            "posts",
            &[
                ("slug", slug),
                ("status", "publish,future,draft,pending,private"),
                ("context", "edit"),
            ],
        );
        let found = self.call(req, "WordPress").await?;
        let ours = found.as_array().and_then(|posts| {
            posts
                .iter()
                .find(|p| p["title"]["raw"].as_str() == Some(m.title.as_str()))
        });
        Ok(ours.and_then(|p| p["id"].as_u64()).map(|id| id.to_string()))
    }

    async fn trash(&self, known: Option<&str>) -> Result<Synced, Answer> {
        let Some(id) = known else {
            return Ok(Synced::Trashed("nothing to trash".into()));
        };
        let req = self.request(reqwest::Method::DELETE, &format!("posts/{id}"));
        match self.call(req, "WordPress").await {
            Ok(_) => Ok(Synced::Trashed("trashed".into())),
            // Already trashed (410) or deleted (404) on the blog: nothing left to do.
            Err(Answer::Gone(s)) => Ok(Synced::Trashed(s)),
            Err(Answer::Retry(s)) if s.starts_with("404") => Ok(Synced::Trashed(s)),
            Err(other) => Err(other),
        }
    }

    /// The ids of the tags with these names, creating the missing ones.
    async fn tag_ids(&self, names: &[String]) -> Result<Vec<u64>, Answer> {
        let mut ids = Vec::new();
        for name in names {
            let req = self.query(
                reqwest::Method::GET,
                "tags",
                &[("search", name.as_str()), ("per_page", "100")],
            );
            let found = self.call(req, "WordPress").await?;
            let existing = found.as_array().and_then(|tags| {
                tags.iter()
                    .find(|t| t["name"].as_str() == Some(name))
                    .and_then(|t| t["id"].as_u64())
            });
            let id = match existing {
                Some(id) => id,
                None => {
                    let req = self
                        .request(reqwest::Method::POST, "tags")
                        .header("content-type", "application/json")
                        .body(json!({ "name": name }).to_string());
                    let made = self.call(req, "WordPress").await?;
                    made["id"].as_u64().ok_or_else(|| {
                        Answer::Retry(format!("WordPress made tag {name} without an id"))
                    })?
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }
}
