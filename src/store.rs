//! The state store: one SQLite file, `state/tayori.sqlite3` (WAL journal), holding every
//! durable fact so that a crash or restart at any moment resumes without losing or repeating work.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward from version 0 on
//! open. Inspect it with `sqlite3 state/tayori.sqlite3 .schema`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// The store's file name inside `state/`.
pub const FILE_NAME: &str = "tayori.sqlite3";

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: posts seen. `announced` is `back_catalogue` for posts there at first start (never
    // emailed), `pending` for posts waiting for the next issue, or `issue:<n>` once issued.
    "CREATE TABLE posts (
        slug TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        hash TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        published_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        announced TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );",
];

/// Why the store failed. Database errors are worth a retry only when the file was busy.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state store {0}: written by a newer tayori (schema version {1})")]
    TooNew(PathBuf, i64),
    #[error("cannot create {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// What the store knows of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    pub slug: String,
    pub path: String,
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

/// An open state store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// True when this open created the file: the posts recorded now are the back catalogue.
    pub created: bool,
}

/// The store's path in a newsletter folder.
pub fn path_in(root: &Path) -> PathBuf {
    root.join("state").join(FILE_NAME)
}

impl Store {
    /// Opens the store of `root`, creating it (and `state/`) when absent.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let path = path_in(root);
        let dir = root.join("state");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(dir.clone(), e))?;
        let created = !path.exists();
        let conn = Connection::open(&path).map_err(|e| sql(&path, e))?;
        let mut store = Store {
            conn,
            path,
            created,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store read-only; `None` when there is none (`check`, `preview`,
    /// `status` never create or change it).
    pub fn open_read_only(root: &Path) -> Result<Option<Store>, StoreError> {
        let path = path_in(root);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| sql(&path, e))?;
        Ok(Some(Store {
            conn,
            path,
            created: false,
        }))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let p = self.path.clone();
        self.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            )
            .map_err(|e| sql(&p, e))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sql(&p, e))?;
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::TooNew(p, version));
        }
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m).map_err(|e| sql(&p, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| sql(&p, e))?;
        }
        tx.commit().map_err(|e| sql(&p, e))
    }

    /// The record of a post, by slug.
    pub fn post(&self, slug: &str) -> Result<Option<PostRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT slug, path, hash, first_seen, published_at, updated_at, announced, deleted
                 FROM posts WHERE slug = ?1",
                [slug],
                |r| {
                    Ok(PostRecord {
                        slug: r.get(0)?,
                        path: r.get(1)?,
                        hash: r.get(2)?,
                        first_seen: time(r.get::<_, String>(3)?),
                        published_at: time(r.get::<_, String>(4)?),
                        updated_at: time(r.get::<_, String>(5)?),
                        announced: r.get(6)?,
                        deleted: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Records a published post: new posts get `published` (their date, or `now`) and are
    /// `pending` for the next issue — or `back_catalogue` when this open created the store; a
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
                let announced = if self.created {
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
}

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn time(s: String) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(&s).unwrap_or_default()
}
