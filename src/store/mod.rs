//! The state store: one SQLite file, `state/tayori.sqlite3` (WAL journal), holding every
//! durable fact so that a crash or restart at any moment resumes without losing or repeating work.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward from version 0 on
//! open. Inspect it with `sqlite3 state/tayori.sqlite3 .schema`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

mod blocking;
mod bounces;
mod confirmations;
mod crosspost_queue;
mod deliveries;
mod editor;
mod inbox;
mod journal;
mod posts;
mod readers;
mod records;
mod requests;
mod search;
pub mod signups;
mod unsubscribe_ids;

pub use blocking::Shared;
pub use bounces::BounceRecord;
pub use confirmations::{Confirmation, ConfirmationOutcome};
pub use crosspost_queue::*;
pub use deliveries::*;
pub use editor::{EditorMail, Figures, Gate, ALERT_QUIET};
pub use inbox::{InboxMessage, Thread};
pub use journal::{Journal, JournalError, Journaled};
pub use posts::{Change, PostRecord};
pub use readers::{FeedFetcher, WINDOW as READERS_WINDOW};
pub use records::IssueRecipient;
pub use requests::NUDGE;
pub use requests::{Request, RequestState};
pub use search::SearchDoc;
pub use signups::{Signup, SignupRequest, SignupStanding};

/// The store's file name inside `state/`.
pub const FILE_NAME: &str = "tayori.sqlite3";

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
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
    // 2: issues (content rendered once, kept for resumes), the delivery ledger, suppressions.
    "CREATE TABLE issues (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        posts TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        issue_id INTEGER NOT NULL REFERENCES issues(id),
        address TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT,
        message_id TEXT NOT NULL,
        updated_at TEXT,
        PRIMARY KEY (issue_id, address)
    ) WITHOUT ROWID;
    -- No index on state: claims walk the primary key in order, and every index would be one
    -- more write per delivery on the hot path.
    CREATE INDEX deliveries_by_address ON deliveries(address);
    CREATE TABLE suppressions (
        address TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    );",
    // 3: the cross-post queue (one row per event, the same id on every retry; named webhook_*
    // until 13), every attempt,
    // and small facts the daemon keeps (the last schedule tick).
    "CREATE TABLE webhook_events (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        slug TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        last_status TEXT
    );
    CREATE TABLE webhook_attempts (
        event_id TEXT NOT NULL REFERENCES webhook_events(id),
        at TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 4: sign-ups through the web form (double opt-in) or by the office, with the consent
    // record 特定電子メール法 asks for; each consent text shown is kept once, by its hash.
    "CREATE TABLE consent_texts (
        hash TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        first_used TEXT NOT NULL
    );
    CREATE TABLE signups (
        address TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        list TEXT NOT NULL,
        state TEXT NOT NULL,
        method TEXT NOT NULL,
        consent_hash TEXT REFERENCES consent_texts(hash),
        consent_note TEXT,
        requested_at TEXT NOT NULL,
        confirmed_at TEXT,
        unsubscribed_at TEXT,
        client_ip TEXT,
        token_hash TEXT,
        token_expires TEXT,
        confirmation_sent_at TEXT
    );
    CREATE INDEX signups_by_token ON signups(token_hash);",
    // 5: bounce reports read from the mailbox (each once, by its Message-ID or file name) and
    // what each said about an address.
    "CREATE TABLE bounce_reports (
        id TEXT PRIMARY KEY,
        read_at TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE TABLE bounces (
        address TEXT NOT NULL,
        at TEXT NOT NULL,
        issue_id INTEGER,
        cause TEXT NOT NULL,
        status TEXT NOT NULL,
        diagnostic TEXT NOT NULL,
        report TEXT NOT NULL
    );
    CREATE INDEX bounces_by_address ON bounces(address);",
    // 6: what a cross-post target calls each post (the WordPress post id, the Micropub URL).
    "CREATE TABLE crosspost_ids (
        target TEXT NOT NULL,
        slug TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        remote_url TEXT,
        PRIMARY KEY (target, slug)
    );",
    // 7: requests to the running daemon (`send` today), taken within a second and answered
    // with what came of them, so that a command never does the daemon's work beside it.
    "CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        args TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        requested_by INTEGER NOT NULL,
        state TEXT NOT NULL,
        taken_at TEXT,
        answered_at TEXT,
        answer TEXT
    );",
    // 8: sign-up confirmations as a queue (due, attempts, last error; `confirmation_sent_at`
    // is when one was acknowledged), and the store-resolved ids of unsubscribe links.
    "ALTER TABLE signups ADD COLUMN confirmation_due TEXT;
    ALTER TABLE signups ADD COLUMN confirmation_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE signups ADD COLUMN confirmation_error TEXT;
    ALTER TABLE signups ADD COLUMN confirmations_unanswered INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX signups_by_confirmation_due ON signups(confirmation_due);
    CREATE TABLE unsubscribe_ids (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL
    );
    CREATE INDEX unsubscribe_ids_by_address ON unsubscribe_ids(address);",
    // 9: the search index: each published post's text, normalised (NFKC, lower case), kept
    // with the revision it was made from so a build re-indexes only what changed.
    "CREATE TABLE search_docs (
        slug TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        title TEXT NOT NULL,
        url TEXT NOT NULL,
        published_at TEXT NOT NULL,
        body TEXT NOT NULL
    );",
    // 10: feed fetchers that say how many readers they fetch for (no reader is recorded).
    "CREATE TABLE feed_fetchers (
        fetcher TEXT NOT NULL,
        feed TEXT NOT NULL,
        subscribers INTEGER NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (fetcher, feed)
    );",
    // 11: the office (editor mail): mail to the editors waiting or sent (each to every editor
    // once: `delivered_to` lists who has it), what was already told (a file refused, a post
    // scheduled: told again only when it changes), the proof links (hashed tokens bound to
    // one version of the pending issue) and the alerts raised, each by cause.
    "CREATE TABLE editor_mail (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        delivered_to TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE TABLE editor_noted (
        key TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        noted_at TEXT NOT NULL
    );
    CREATE TABLE editor_tokens (
        hash TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        version TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE editor_alerts (
        cause TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        active INTEGER NOT NULL,
        raised_at TEXT NOT NULL,
        told INTEGER NOT NULL
    );",
    // 12: post by email: each message of the editors' inbox read once (by every name it is
    // known by: its Message-ID, content hash or Maildir file name) and what came of it; the
    // files it wrote into posts/, so the receipt answers the message they came from; an editor
    // mail may answer one message (To its sender, In-Reply-To and References).
    "CREATE TABLE inbox_messages (
        id TEXT PRIMARY KEY,
        message TEXT NOT NULL,
        read_at TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE inbox_files (
        file TEXT PRIMARY KEY,
        message TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        refs TEXT NOT NULL,
        refused TEXT NOT NULL,
        written_at TEXT NOT NULL,
        answered INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE editor_mail ADD COLUMN reply_to TEXT;
    ALTER TABLE editor_mail ADD COLUMN in_reply_to TEXT;
    ALTER TABLE editor_mail ADD COLUMN refs TEXT;",
    // 13: the cross-post queue is named for what it holds: every target's events, not only the
    // webhook's (SQLite renames the reference of the attempts too).
    "ALTER TABLE webhook_events RENAME TO crosspost_events;
    ALTER TABLE webhook_attempts RENAME TO crosspost_attempts;",
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
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    /// The caller gave up a write half-way (nothing of it was kept), for this reason.
    #[error("{0}")]
    Abandoned(String),
}

/// An open state store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// True from the store's creation until the first publish has recorded what `posts/` held
    /// then: those posts are the back catalogue (in feeds and archive, never emailed). Kept in
    /// `meta` so that a first publish cut short is finished by the next one.
    back_catalogue: std::cell::Cell<bool>,
}

/// The store's path in a newsletter folder.
pub fn path_in(root: &Path) -> PathBuf {
    root.join("state").join(FILE_NAME)
}

impl Store {
    /// Opens the store of `root`, creating it (and `state/`) when absent. `state/` is 0700 and
    /// the database files 0600: they hold every subscriber's address.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let path = path_in(root);
        let dir = root.join("state");
        crate::files::private_dir(&dir).map_err(|e| StoreError::Io(dir.clone(), e))?;
        // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the same.
        // Only when absent: opening and closing a descriptor of a database that another
        // connection in this process uses would drop that connection's POSIX locks.
        let mut create = std::fs::OpenOptions::new();
        create.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            create.mode(0o600);
        }
        match create.open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::Io(path.clone(), e)),
        }
        for suffix in ["", "-wal", "-shm"] {
            let f = PathBuf::from(format!("{}{suffix}", path.display()));
            crate::files::make_private(&f).map_err(|e| StoreError::Io(f.clone(), e))?;
        }
        let conn = Connection::open(&path).map_err(|e| sql(&path, e))?;
        let mut store = Store {
            conn,
            path,
            back_catalogue: false.into(),
        };
        store.migrate()?;
        store
            .back_catalogue
            .set(store.meta(BACK_CATALOGUE)?.is_some());
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
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sql(&path, e))?;
        let mut store = Store {
            conn,
            path,
            back_catalogue: false.into(),
        };
        if (version as usize) < MIGRATIONS.len() {
            // A store of an earlier release (the daemon not started since the upgrade): read
            // through a copy in memory brought up to date, the file left as it is.
            let mut copy = Connection::open_in_memory().map_err(|e| sql(&store.path, e))?;
            rusqlite::backup::Backup::new(&store.conn, &mut copy)
                .and_then(|b| b.run_to_completion(1024, std::time::Duration::ZERO, None))
                .map_err(|e| sql(&store.path, e))?;
            store.conn = copy;
            store.migrate()?;
        }
        store
            .back_catalogue
            .set(store.meta(BACK_CATALOGUE)?.is_some());
        Ok(Some(store))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let p = self.path.clone();
        self.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
                 PRAGMA foreign_keys=ON;",
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
        if version == 0 {
            // A new store: what `posts/` holds now is the back catalogue. Written with the
            // schema, so that no crash can leave a new store that would email old posts.
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, 'open')",
                [BACK_CATALOGUE],
            )
            .map_err(|e| sql(&p, e))?;
        }
        tx.commit().map_err(|e| sql(&p, e))
    }
}

/// The `meta` key present while the back catalogue is still being recorded.
const BACK_CATALOGUE: &str = "back_catalogue";

impl Store {
    /// Whether posts recorded now are the back catalogue (the store was just created and the
    /// first publish has not finished).
    pub fn recording_back_catalogue(&self) -> bool {
        self.back_catalogue.get()
    }

    /// Ends the back catalogue: every post recorded from now on is new and will be emailed.
    pub fn close_back_catalogue(&self) -> Result<(), StoreError> {
        if self.back_catalogue.get() {
            self.conn
                .execute("DELETE FROM meta WHERE key = ?1", [BACK_CATALOGUE])
                .map_err(|e| sql(&self.path, e))?;
            self.back_catalogue.set(false);
        }
        Ok(())
    }

    /// A daemon fact.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Sets a daemon fact.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Runs a query and collects its rows.
    pub(crate) fn rows<T, P: rusqlite::Params>(
        &self,
        query: &str,
        params: P,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut st = self.conn.prepare(query).map_err(|e| sql(&self.path, e))?;
        let rows = st
            .query_map(params, f)
            .and_then(|r| r.collect())
            .map_err(|e| sql(&self.path, e));
        rows
    }
}

pub(crate) fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// A time column (RFC 3339). One that does not parse is an error of the row, never 1970: a
/// wrong time would decide what is due, retried or given up.
pub(crate) fn time(s: String) -> rusqlite::Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("time {s:?}: {e}").into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_an_earlier_release_is_read_up_to_date_and_left_as_it_is() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("state")).unwrap();
        let path = path_in(root.path());
        let old = MIGRATIONS.len() - 1;
        {
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..old] {
                conn.execute_batch(m).unwrap();
            }
            conn.pragma_update(None, "user_version", old as i64)
                .unwrap();
        }
        let store = Store::open_read_only(root.path()).unwrap().unwrap();
        assert!(store.crosspost_events().unwrap().is_empty());
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            version as usize, old,
            "the file is not migrated by a reader"
        );
    }
}
