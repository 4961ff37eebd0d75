//! The cross-post queue: events waiting for each target (the webhook, WordPress, Micropub,
//! WebSub pings), and every attempt.

use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, time, Store, StoreError};

/// An event to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrosspostEvent {
    /// `webhook-id`: the same on every retry.
    pub id: String,
    pub event: String,
    pub slug: String,
    /// The JSON body, fixed when the event was queued.
    pub body: String,
    pub created_at: DateTime<FixedOffset>,
    pub attempts: i64,
    /// `pending`, `delivered`, `gone` (410) or `failed` (gave up).
    pub state: String,
    pub last_status: Option<String>,
}

impl Store {
    /// Queues an event; an event with the same id is queued once.
    pub fn queue_crosspost(
        &self,
        id: &str,
        event: &str,
        slug: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO crosspost_events (id, event, slug, body, created_at, next_attempt_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'pending')",
                params![id, event, slug, body, now.to_rfc3339()],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(n == 1)
    }

    fn events(
        &self,
        cond: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<CrosspostEvent>, StoreError> {
        self.rows(
            &format!(
                "SELECT id, event, slug, body, created_at, attempts, state, last_status FROM crosspost_events WHERE {cond}"
            ),
            p,
            |r| {
                Ok(CrosspostEvent {
                    id: r.get(0)?,
                    event: r.get(1)?,
                    slug: r.get(2)?,
                    body: r.get(3)?,
                    created_at: time(r.get(4)?)?,
                    attempts: r.get(5)?,
                    state: r.get(6)?,
                    last_status: r.get(7)?,
                })
            },
        )
    }

    /// Pending events due at `now` whose event name starts with `prefix` (one target's
    /// queue), oldest first.
    pub fn due_events(
        &self,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<CrosspostEvent>, StoreError> {
        self.events(
            "state = 'pending' AND next_attempt_at <= ?1 AND substr(event, 1, length(?2)) = ?2 ORDER BY created_at",
            params![now.to_rfc3339(), prefix],
        )
    }

    /// When the next pending event of one target's queue is due.
    pub fn next_event_due(
        &self,
        prefix: &str,
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_at) FROM crosspost_events
                 WHERE state = 'pending' AND substr(event, 1, length(?1)) = ?1",
                [prefix],
                |r| r.get::<_, Option<String>>(0)?.map(time).transpose(),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| sql(&self.path, e))
    }

    /// Marks the older pending events of `event` for `slug` superseded by `keep`: a target that
    /// mirrors a post's state needs only the newest.
    pub fn supersede_events(&self, event: &str, slug: &str, keep: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE crosspost_events SET state = 'superseded'
                 WHERE event = ?1 AND slug = ?2 AND id != ?3 AND state = 'pending'",
                params![event, slug, keep],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// What `target` calls the post `slug`: its id there and its URL.
    pub fn remote_id(
        &self,
        target: &str,
        slug: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        self.conn
            .query_row(
                "SELECT remote_id, remote_url FROM crosspost_ids WHERE target = ?1 AND slug = ?2",
                [target, slug],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Remembers (or, with `None`, forgets) what `target` calls the post `slug`.
    pub fn set_remote_id(
        &self,
        target: &str,
        slug: &str,
        id: Option<(&str, Option<&str>)>,
    ) -> Result<(), StoreError> {
        let r = match id {
            Some((id, url)) => self.conn.execute(
                "INSERT INTO crosspost_ids (target, slug, remote_id, remote_url) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target, slug) DO UPDATE SET remote_id = ?3, remote_url = ?4",
                params![target, slug, id, url],
            ),
            None => self.conn.execute(
                "DELETE FROM crosspost_ids WHERE target = ?1 AND slug = ?2",
                [target, slug],
            ),
        };
        r.map(|_| ()).map_err(|e| sql(&self.path, e))
    }

    /// Every event, newest first (for `status`).
    pub fn crosspost_events(&self) -> Result<Vec<CrosspostEvent>, StoreError> {
        self.events("1 ORDER BY created_at DESC", [])
    }

    /// Every attempt of an event: (time, status).
    pub fn crosspost_attempts(&self, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT at, status FROM crosspost_attempts WHERE event_id = ?1 ORDER BY rowid",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Records an attempt and the event's new state (`pending` with the next time, or final).
    pub fn record_crosspost_attempt(
        &mut self,
        id: &str,
        status: &str,
        state: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let p = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        tx.execute(
            "INSERT INTO crosspost_attempts (event_id, at, status) VALUES (?1, ?2, ?3)",
            params![id, now.to_rfc3339(), status],
        )
        .map_err(|e| sql(&p, e))?;
        tx.execute(
            // Only a pending event moves on: one superseded meanwhile stays superseded.
            "UPDATE crosspost_events SET attempts = attempts + 1, last_status = ?2, state = ?3, next_attempt_at = ?4 WHERE id = ?1 AND state = 'pending'",
            params![id, status, state, next.to_rfc3339()],
        )
        .map_err(|e| sql(&p, e))?;
        tx.commit().map_err(|e| sql(&p, e))
    }
}
