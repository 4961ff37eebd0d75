//! Posts seen: slug, file, content hash, publication times, and whether they were announced.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, time, Store, StoreError};

/// What the store knows of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    pub slug: String,
    pub path: String,
    pub kind: String,
    pub title: String,
    pub hash: String,
    pub first_seen: DateTime<FixedOffset>,
    pub published_at: DateTime<FixedOffset>,
    pub updated_at: DateTime<FixedOffset>,
    pub announced: String,
    pub deleted: bool,
}

/// What recording a post changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Updated,
    Unchanged,
}

impl Store {
    /// The record of a post, by slug.
    pub fn post(&self, slug: &str) -> Result<Option<PostRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM posts WHERE slug = ?1"),
                [slug],
                record_of_row,
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Every post ever recorded (deleted ones too), by slug: one query for a whole build.
    pub fn all_posts(&self) -> Result<HashMap<String, PostRecord>, StoreError> {
        let rows = self.rows(
            &format!("SELECT {RECORD_COLUMNS} FROM posts"),
            [],
            record_of_row,
        )?;
        Ok(rows.into_iter().map(|r| (r.slug.clone(), r)).collect())
    }

    /// Records a published post: new posts get `published` (their date, or `now`) and are
    /// `pending` for the next issue — or `back_catalogue` while the store's first publish runs; a
    /// changed hash moves `updated_at` to `now`.
    pub fn record_post(
        &self,
        post: &crate::content::Post,
        published: DateTime<FixedOffset>,
        now: DateTime<Utc>,
    ) -> Result<(PostRecord, Change), StoreError> {
        let now_s = now.to_rfc3339();
        let path = post.source.to_string_lossy();
        let change = match self.post(&post.slug)? {
            None => {
                let announced = if self.recording_back_catalogue() {
                    "back_catalogue"
                } else {
                    "pending"
                };
                self.conn
                    .execute(
                        "INSERT INTO posts (slug, path, kind, title, hash, first_seen, published_at, updated_at, announced)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                        params![post.slug, path, post.kind.as_str(), post.title, post.hash, now_s, published.to_rfc3339(), announced],
                    )
                    .map_err(|e| sql(&self.path, e))?;
                Change::New
            }
            Some(r) if r.hash != post.hash || r.deleted => {
                self.conn
                    .execute(
                        "UPDATE posts SET path = ?2, kind = ?3, title = ?4, hash = ?5, updated_at = ?6, deleted = 0 WHERE slug = ?1",
                        params![post.slug, path, post.kind.as_str(), post.title, post.hash, now_s],
                    )
                    .map_err(|e| sql(&self.path, e))?;
                Change::Updated
            }
            Some(_) => Change::Unchanged,
        };
        let record = self.post(&post.slug)?.expect("row written above");
        Ok((record, change))
    }

    /// Whether the post with this slug would go into the next issue once published: a post not
    /// yet recorded does unless it becomes back catalogue, a recorded one while `pending`.
    pub fn waits_for_issue(&self, slug: &str) -> Result<bool, StoreError> {
        Ok(match self.post(slug)? {
            None => !self.recording_back_catalogue(),
            Some(r) => r.announced == "pending" && !r.deleted,
        })
    }

    /// Sets what a post's announcement state is (a renamed file keeps its post's).
    pub fn set_announced(&self, slug: &str, announced: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE posts SET announced = ?2 WHERE slug = ?1",
                params![slug, announced],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Marks a post deleted; returns its record when it was published and not yet deleted.
    pub fn mark_deleted(&self, slug: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE posts SET deleted = 1, updated_at = ?2 WHERE slug = ?1 AND deleted = 0",
                params![slug, now.to_rfc3339()],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(n == 1)
    }
}

const RECORD_COLUMNS: &str =
    "slug, path, hash, first_seen, published_at, updated_at, announced, deleted, kind, title";

fn record_of_row(r: &rusqlite::Row) -> rusqlite::Result<PostRecord> {
    Ok(PostRecord {
        slug: r.get(0)?,
        path: r.get(1)?,
        hash: r.get(2)?,
        first_seen: time(r.get::<_, String>(3)?)?,
        published_at: time(r.get::<_, String>(4)?)?,
        updated_at: time(r.get::<_, String>(5)?)?,
        announced: r.get(6)?,
        deleted: r.get(7)?,
        kind: r.get(8)?,
        title: r.get(9)?,
    })
}
