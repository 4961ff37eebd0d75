//! The office's part of the store: editor mail waiting or sent, what was already told, the
//! hold / approval of the pending issue (by version: the set of pending posts and their
//! revisions), the proof links' hashed tokens and the alerts raised.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{sql, Store, StoreError};

/// One editor mail as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorMail {
    pub id: i64,
    /// `receipt`, `proof`, `report`, `alert` or `resolved` (the `X-Tayori-Kind` header).
    pub kind: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub queued_at: String,
    /// The editors who already have it.
    pub delivered_to: Vec<String>,
    pub attempts: i64,
    /// An answer to one message: its sender, Message-ID and References (else to every editor).
    pub reply: Option<super::Thread>,
}

/// Whether the pending issue may go out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Nothing pending, or nothing holds it.
    Open,
    /// `tayori hold` or a proof's hold link.
    Held,
    /// `editor.approval` and no editor approved this version of it.
    AwaitingApproval,
}

const HOLD: &str = "editor_hold";
const APPROVED: &str = "editor_approved";
/// Set when a tick passed while the issue was held or unapproved: released, it goes at once.
const TICK_PASSED: &str = "editor_tick_passed";
/// How long an alert for one cause keeps quiet before it is said again.
pub const ALERT_QUIET: TimeDelta = TimeDelta::hours(6);

impl Store {
    /// Queues an editor mail; returns its id.
    pub fn queue_editor_mail(
        &self,
        kind: &str,
        subject: &str,
        html: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO editor_mail (kind, subject, html, text, queued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![kind, subject, html, text, now.to_rfc3339()],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Queues an editor mail that answers `thread`'s message, with `In-Reply-To` and
    /// `References`: To its sender, or to every editor when `thread.sender` is empty; returns
    /// its id.
    pub fn queue_editor_reply(
        &self,
        kind: &str,
        subject: &str,
        html: &str,
        text: &str,
        thread: &super::Thread,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id = self.queue_editor_mail(kind, subject, html, text, now)?;
        self.conn
            .execute(
                "UPDATE editor_mail SET reply_to = ?2, in_reply_to = ?3, refs = ?4 WHERE id = ?1",
                params![
                    id,
                    Some(thread.sender.as_str()).filter(|s| !s.is_empty()),
                    thread.message,
                    thread.refs
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(id)
    }

    /// Editor mail not yet delivered to every editor, oldest first.
    pub fn editor_mail_waiting(&self) -> Result<Vec<EditorMail>, StoreError> {
        self.rows(
            "SELECT id, kind, subject, html, text, queued_at, delivered_to, attempts,
                    reply_to, in_reply_to, refs
             FROM editor_mail WHERE sent_at IS NULL ORDER BY id",
            [],
            |r| {
                let done: String = r.get(6)?;
                Ok(EditorMail {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    html: r.get(3)?,
                    text: r.get(4)?,
                    queued_at: r.get(5)?,
                    delivered_to: done.lines().map(str::to_string).collect(),
                    attempts: r.get(7)?,
                    reply: r.get::<_, Option<String>>(9)?.map(|message| super::Thread {
                        message,
                        sender: r
                            .get::<_, Option<String>>(8)
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                        subject: String::new(),
                        refs: r
                            .get::<_, Option<String>>(10)
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                        refused: String::new(),
                    }),
                })
            },
        )
    }

    /// Every editor mail of `kind` ever queued (sent or not), oldest first: for `status`/tests.
    pub fn editor_mail_count(&self, kind: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM editor_mail WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .map_err(|e| sql(&self.path, e))
    }

    /// Records that `address` has mail `id` (the relay said 250, or the file is written).
    pub fn editor_mail_delivered(&self, id: i64, address: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE editor_mail SET delivered_to = delivered_to || ?2 || char(10) WHERE id = ?1",
                params![id, address],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Mail `id` is with every editor.
    pub fn editor_mail_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE editor_mail SET sent_at = ?2, last_error = NULL WHERE id = ?1",
                params![id, now.to_rfc3339()],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// An attempt at mail `id` failed: it stays waiting.
    pub fn editor_mail_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE editor_mail SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// What was last told under `key` (a digest of it), if anything.
    pub fn noted(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT digest FROM editor_noted WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Remembers what was told under `key`.
    pub fn note(&self, key: &str, digest: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO editor_noted (key, digest, noted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET digest = ?2, noted_at = ?3",
                params![key, digest, now.to_rfc3339()],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Forgets what was told under `key` (the file is good again, the post published).
    pub fn unnote(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM editor_noted WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// The keys noted under `prefix`.
    pub fn noted_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT key FROM editor_noted WHERE substr(key, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )
    }

    /// The version of the pending issue — a digest of its posts and their revisions — and its
    /// slugs; `None` when no post waits for an issue. A change to any of them is a new version.
    pub fn pending_version(&self) -> Result<Option<(String, Vec<String>)>, StoreError> {
        let rows: Vec<(String, String)> = self.rows(
            "SELECT slug, hash FROM posts WHERE announced = 'pending' AND deleted = 0 ORDER BY slug",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut h = Sha256::new();
        for (slug, hash) in &rows {
            h.update(slug.as_bytes());
            h.update([0]);
            h.update(hash.as_bytes());
            h.update([0]);
        }
        let version = crate::content::hex(&h.finalize())[..32].to_string();
        Ok(Some((version, rows.into_iter().map(|(s, _)| s).collect())))
    }

    /// Whether the pending issue may go out (`approval`: `editor.approval`).
    pub fn gate(&self, approval: bool) -> Result<Gate, StoreError> {
        let Some((version, _)) = self.pending_version()? else {
            return Ok(Gate::Open);
        };
        if self.meta(HOLD)?.is_some() {
            return Ok(Gate::Held);
        }
        if approval && self.meta(APPROVED)?.as_deref() != Some(version.as_str()) {
            return Ok(Gate::AwaitingApproval);
        }
        Ok(Gate::Open)
    }

    /// Holds the pending issue; false when no post is pending.
    pub fn hold(&self) -> Result<bool, StoreError> {
        if self.pending_version()?.is_none() {
            return Ok(false);
        }
        self.set_meta(HOLD, "1")?;
        Ok(true)
    }

    /// Releases the pending issue and approves this version of it (when `version` is given,
    /// only if it is still the pending one); false when no post is pending or the version is
    /// not the pending one any more.
    pub fn release(&self, version: Option<&str>) -> Result<bool, StoreError> {
        let Some((current, _)) = self.pending_version()? else {
            return Ok(false);
        };
        if version.is_some_and(|v| v != current) {
            return Ok(false);
        }
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [HOLD])
            .map_err(|e| sql(&self.path, e))?;
        self.set_meta(APPROVED, &current)?;
        Ok(true)
    }

    /// A tick passed while the issue was held or awaited approval.
    pub fn note_tick_passed(&self) -> Result<(), StoreError> {
        self.set_meta(TICK_PASSED, "1")
    }

    /// Whether a tick passed while held (and forgets it): a release sends at once.
    pub fn take_tick_passed(&self) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM meta WHERE key = ?1", [TICK_PASSED])
            .map_err(|e| sql(&self.path, e))?;
        Ok(n > 0)
    }

    /// Stores a proof link's token (hashed) for `action` on `version`.
    pub fn add_editor_token(
        &self,
        hash: &str,
        action: &str,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO editor_tokens (hash, action, version, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, action, version, now.to_rfc3339()],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// The version a token (by hash) for `action` belongs to.
    pub fn editor_token(&self, hash: &str, action: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT version FROM editor_tokens WHERE hash = ?1 AND action = ?2",
                [hash, action],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Raises the alert `cause`: true when it is to be told now (new, back after it cleared,
    /// or still there after [`ALERT_QUIET`] since it was last told).
    pub fn raise_alert(
        &self,
        cause: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.raise_alert_every(cause, text, ALERT_QUIET, now)
    }

    /// [`Store::raise_alert`] with its own quiet time for this cause.
    pub fn raise_alert_every(
        &self,
        cause: &str,
        text: &str,
        quiet_for: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row: Option<(bool, String)> = self
            .conn
            .query_row(
                "SELECT active, raised_at FROM editor_alerts WHERE cause = ?1",
                [cause],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        let quiet = |at: &str| {
            DateTime::parse_from_rfc3339(at).is_ok_and(|t| now - t.with_timezone(&Utc) < quiet_for)
        };
        let tell = match &row {
            None => true,
            Some((_, at)) => !quiet(at),
        };
        let active_already = row.as_ref().is_some_and(|(a, _)| *a);
        if !tell && active_already {
            return Ok(false);
        }
        let raised_at = match (&row, tell) {
            (Some((_, at)), false) => at.clone(),
            _ => now.to_rfc3339(),
        };
        self.conn
            .execute(
                "INSERT INTO editor_alerts (cause, text, active, raised_at, told) VALUES (?1, ?2, 1, ?3, ?4)
                 ON CONFLICT(cause) DO UPDATE SET text = ?2, active = 1, raised_at = ?3, told = ?4",
                params![cause, text, raised_at, tell],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(tell)
    }

    /// Clears the alert `cause`: true when it was active and told (a resolution is due).
    pub fn clear_alert(&self, cause: &str) -> Result<bool, StoreError> {
        let told: Option<bool> = self
            .conn
            .query_row(
                "UPDATE editor_alerts SET active = 0 WHERE cause = ?1 AND active = 1 RETURNING told",
                [cause],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        Ok(told.unwrap_or(false))
    }

    /// The causes of the alerts active now.
    pub fn active_alerts(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT cause FROM editor_alerts WHERE active = 1 ORDER BY cause",
            [],
            |r| r.get(0),
        )
    }
}

/// What happened since a time, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Bounces by cause (`address gone`, `complaint`, …).
    pub bounces: Vec<(String, i64)>,
    pub unsubscribes: i64,
    pub signups: i64,
    /// Cross-posts of the issue's posts: (slug, event, state, last status).
    pub crossposts: Vec<(String, String, String, Option<String>)>,
}

impl Store {
    /// Complaints (feedback-loop reports) about issue `issue`.
    pub fn complaints_of(&self, issue: i64) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM bounces WHERE issue_id = ?1 AND cause = 'complaint'",
                [issue],
                |r| r.get(0),
            )
            .map_err(|e| sql(&self.path, e))
    }

    /// The report's figures since `since` (RFC 3339), cross-posts of `slugs`.
    pub fn figures_since(&self, since: &str, slugs: &[String]) -> Result<Figures, StoreError> {
        let bounces = self.rows(
            "SELECT cause, count(*) FROM bounces WHERE at > ?1 GROUP BY cause ORDER BY cause",
            [since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let count = |q: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(q, [since], |r| r.get(0))
                .map_err(|e| sql(&self.path, e))
        };
        let unsubscribes = count(
            "SELECT count(*) FROM suppressions WHERE at > ?1 AND reason LIKE 'unsubscribed%'",
        )?;
        let signups = count("SELECT count(*) FROM signups WHERE confirmed_at > ?1")?;
        let mut crossposts = Vec::new();
        for e in self.crosspost_events()? {
            if slugs.contains(&e.slug) {
                crossposts.push((e.slug, e.event, e.state, e.last_status));
            }
        }
        Ok(Figures {
            bounces,
            unsubscribes,
            signups,
            crossposts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_told_once_per_quiet_time_and_its_resolution_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0 = Utc::now();
        assert!(store.raise_alert("smtp", "down", t0).unwrap());
        assert!(!store
            .raise_alert("smtp", "down", t0 + TimeDelta::hours(1))
            .unwrap());
        assert!(store
            .raise_alert("smtp", "down", t0 + TimeDelta::hours(7))
            .unwrap());
        assert!(store.clear_alert("smtp").unwrap());
        assert!(!store.clear_alert("smtp").unwrap(), "cleared once");
        // Back within the quiet time: not told again, and so no resolution either.
        assert!(!store
            .raise_alert("smtp", "down", t0 + TimeDelta::hours(8))
            .unwrap());
        assert!(!store.clear_alert("smtp").unwrap());
    }

    #[test]
    fn nothing_pending_cannot_be_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.hold().unwrap());
        assert!(!store.release(None).unwrap());
        assert_eq!(store.gate(true).unwrap(), Gate::Open);
    }
}
