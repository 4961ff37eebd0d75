//! Issues, the delivery ledger (issue × address) and suppressions.
//!
//! A delivery goes `pending → sending → sent | failed`. `sending` means handed to a worker;
//! after a crash those rows go back to `pending` and are sent again, so at most the messages in
//! flight at the crash are repeated. `sent` is written only after the server's 250 for DATA.

use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, time, Store, StoreError};

/// An issue as stored: its content is rendered once, at creation, and kept, so a resumed issue
/// sends exactly what the first attempt sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    pub id: i64,
    pub created_at: DateTime<FixedOffset>,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The slugs of its posts.
    pub slugs: Vec<String>,
    /// `sending` until every delivery is `sent` or `failed`, then `done`.
    pub state: String,
}

/// A delivery handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    pub address: String,
    pub email: String,
    pub name: String,
    pub message_id: String,
    pub attempts: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered 250 to DATA (or the `.eml` was written).
    Sent { reply: String },
    /// A permanent (5xx) refusal: never retried. `bounce` is the verdict on a refusal at RCPT
    /// or DATA (recorded and applied like a bounce report's); `None` when no server refused.
    Failed {
        reply: String,
        bounce: Option<crate::bounces::Cause>,
    },
    /// Transient trouble that outlasted this run's retries: `pending` again for the next run.
    Deferred { reply: String },
}

/// One delivery as `status --subscriber` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub issue: i64,
    pub state: String,
    pub attempts: i64,
    pub last_reply: Option<String>,
    pub updated_at: Option<String>,
}

/// Counts per state for one issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueCounts {
    pub id: i64,
    pub created_at: String,
    pub subject: String,
    pub state: String,
    pub sent: i64,
    pub pending: i64,
    pub sending: i64,
    pub failed: i64,
}

impl Store {
    /// Slugs of published posts waiting for the next issue, oldest first.
    pub fn pending_posts(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT slug FROM posts WHERE announced = 'pending' AND deleted = 0 ORDER BY published_at",
            [],
            |r| r.get(0),
        )
    }

    /// The issue a previous run left unfinished, if any.
    pub fn unfinished_issue(&self) -> Result<Option<IssueRecord>, StoreError> {
        self.issue_where("state = 'sending' ORDER BY id LIMIT 1")
    }

    /// An issue by number.
    pub fn issue(&self, id: i64) -> Result<Option<IssueRecord>, StoreError> {
        self.issue_where(&format!("id = {id}"))
    }

    fn issue_where(&self, cond: &str) -> Result<Option<IssueRecord>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT id, created_at, subject, html, text, state, posts FROM issues WHERE {cond}"
                ),
                [],
                |r| {
                    Ok(IssueRecord {
                        id: r.get(0)?,
                        created_at: time(r.get(1)?)?,
                        subject: r.get(2)?,
                        html: r.get(3)?,
                        text: r.get(4)?,
                        state: r.get(5)?,
                        slugs: r
                            .get::<_, String>(6)?
                            .split_whitespace()
                            .map(str::to_string)
                            .collect(),
                    })
                },
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Creates an issue in one transaction: the issue row, its posts marked as announced, and a
    /// `pending` delivery per recipient not suppressed. `recipients` is called once with a
    /// function taking `(lower-cased address, email as written, name)`; an address given twice
    /// keeps its first row; an `Err` from it abandons the issue. An issue nobody would receive
    /// is abandoned too: its posts stay pending. The issue's number is at least `first_id`.
    /// `message_id(issue, address)` names each message.
    #[allow(clippy::too_many_arguments)]
    pub fn create_issue(
        &mut self,
        first_id: i64,
        now: DateTime<Utc>,
        (subject, html, text): (&str, &str, &str),
        slugs: &[String],
        recipients: impl FnOnce(&mut dyn FnMut(&str, &str, &str)) -> Result<(), String>,
        message_id: impl Fn(i64, &str) -> String,
    ) -> Result<IssueRecord, StoreError> {
        let p = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        tx.execute(
            "INSERT INTO issues (id, created_at, subject, html, text, posts, state)
             VALUES (max(?6, (SELECT coalesce(max(id), 0) + 1 FROM issues)), ?1, ?2, ?3, ?4, ?5, 'sending')",
            params![now.to_rfc3339(), subject, html, text, slugs.join(" "), first_id],
        )
        .map_err(|e| sql(&p, e))?;
        let id = tx.last_insert_rowid();
        {
            let mut mark = tx
                .prepare("UPDATE posts SET announced = ?2 WHERE slug = ?1")
                .map_err(|e| sql(&p, e))?;
            for s in slugs {
                mark.execute(params![s, format!("issue:{id}")])
                    .map_err(|e| sql(&p, e))?;
            }
            let (added, read) = add_deliveries(&tx, &p, id, recipients, message_id)?;
            read.map_err(StoreError::Abandoned)?;
            if added == 0 {
                return Err(StoreError::Abandoned(
                    "no subscribers to send to (every list is empty or every address is suppressed); the posts stay pending".into(),
                ));
            }
        }
        tx.commit().map_err(|e| sql(&p, e))?;
        Ok(self.issue(id)?.expect("issue inserted above"))
    }

    /// Puts the failed deliveries of the newest issue back to `pending` (except suppressed
    /// addresses) and reopens it; returns the issue and how many.
    pub fn retry_failed(&self) -> Result<Option<(i64, usize)>, StoreError> {
        let Some(issue) = self.issue_where("1 ORDER BY id DESC LIMIT 1")? else {
            return Ok(None);
        };
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'pending' WHERE issue_id = ?1 AND state = 'failed'
                 AND address NOT IN (SELECT address FROM suppressions)",
                [issue.id],
            )
            .map_err(|e| sql(&self.path, e))?;
        if n > 0 {
            self.conn
                .execute(
                    "UPDATE issues SET state = 'sending' WHERE id = ?1",
                    [issue.id],
                )
                .map_err(|e| sql(&self.path, e))?;
        }
        Ok(Some((issue.id, n)))
    }

    /// Puts deliveries a crashed run left `sending` back to `pending`. Only the holder of the
    /// folder's sender lock may: another process's `sending` rows are its messages in flight.
    pub fn requeue_in_flight(
        &self,
        issue: i64,
        _held: &crate::lock::SenderLock,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'pending' WHERE issue_id = ?1 AND state = 'sending'",
                [issue],
            )
            .map_err(|e| sql(&self.path, e))
    }

    /// Takes up to `limit` pending deliveries of `issue` with addresses after `after` (in
    /// address order) and marks them `sending`, in one statement.
    pub fn claim(
        &mut self,
        issue: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let p = self.path.clone();
        let mut st = self
            .conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'sending'
                 WHERE issue_id = ?1 AND state = 'pending' AND address IN (
                     SELECT address FROM deliveries
                     WHERE issue_id = ?1 AND address > ?2 AND state = 'pending'
                     ORDER BY address LIMIT ?3)
                 RETURNING address, email, name, message_id, attempts",
            )
            .map_err(|e| sql(&p, e))?;
        let mut jobs: Vec<DeliveryJob> = st
            .query_map(params![issue, after, limit as i64], |r| {
                Ok(DeliveryJob {
                    address: r.get(0)?,
                    email: r.get(1)?,
                    name: r.get(2)?,
                    message_id: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })
            .and_then(|r| r.collect())
            .map_err(|e| sql(&p, e))?;
        jobs.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(jobs)
    }

    /// Records a batch of outcomes in one transaction (group commit).
    pub fn record_outcomes(
        &mut self,
        issue: i64,
        outcomes: &[(String, i64, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let p = self.path.clone();
        let at = now;
        let now = now.to_rfc3339();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?3, attempts = ?4, last_reply = ?5, updated_at = ?6
                     WHERE issue_id = ?1 AND address = ?2",
                )
                .map_err(|e| sql(&p, e))?;
            for (address, attempts, outcome) in outcomes {
                // A 5xx at RCPT or DATA is recorded and applied like a bounce report's
                // verdict: it counts toward the soft limit and the bounce rate too.
                if let Outcome::Failed {
                    reply,
                    bounce: Some(cause),
                } = outcome
                {
                    let record = super::BounceRecord {
                        address: address.clone(),
                        issue: Some(issue),
                        cause: *cause,
                        status: crate::bounces::enhanced_status(reply).unwrap_or_default(),
                        diagnostic: reply.clone(),
                    };
                    super::bounces::apply(&tx, &record, "smtp", at)?;
                }
                let (state, reply) = match outcome {
                    Outcome::Sent { reply } => ("sent", reply),
                    Outcome::Failed { reply, .. } => ("failed", reply),
                    // Stays claimed for the rest of this run (so it is not taken again);
                    // `requeue_in_flight` at the end of the run makes it `pending`.
                    Outcome::Deferred { reply } => ("sending", reply),
                };
                st.execute(params![issue, address, state, attempts, reply, now])
                    .map_err(|e| sql(&p, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&p, e))
    }

    /// Marks the issue `done` when nothing is left to send; returns whether it is.
    pub fn finish_issue(&self, issue: i64) -> Result<bool, StoreError> {
        let open: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE issue_id = ?1 AND state IN ('pending', 'sending')",
                [issue],
                |r| r.get(0),
            )
            .map_err(|e| sql(&self.path, e))?;
        if open == 0 {
            self.conn
                .execute("UPDATE issues SET state = 'done' WHERE id = ?1", [issue])
                .map_err(|e| sql(&self.path, e))?;
        }
        Ok(open == 0)
    }

    /// Adds an address to the suppression list (idempotent); returns true when it is new.
    pub fn suppress(
        &self,
        address: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO suppressions (address, reason, at) VALUES (?1, ?2, ?3)",
                params![address.trim().to_lowercase(), reason, now.to_rfc3339()],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(n == 1)
    }

    /// Every suppressed address with its reason and time.
    pub fn suppressions(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.rows(
            "SELECT address, reason, at FROM suppressions ORDER BY at",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every issue with its delivery counts, newest first.
    pub fn issue_counts(&self) -> Result<Vec<IssueCounts>, StoreError> {
        self.rows(
            "SELECT i.id, i.created_at, i.subject, i.state,
                    sum(d.state = 'sent'), sum(d.state = 'pending'), sum(d.state = 'sending'), sum(d.state = 'failed')
             FROM issues i LEFT JOIN deliveries d ON d.issue_id = i.id
             GROUP BY i.id ORDER BY i.id DESC",
            [],
            |r| {
                Ok(IssueCounts {
                    id: r.get(0)?,
                    created_at: r.get(1)?,
                    subject: r.get(2)?,
                    state: r.get(3)?,
                    sent: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    pending: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    sending: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                    failed: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                })
            },
        )
    }

    /// How many deliveries of an issue are in one state.
    pub fn count_in(&self, issue: i64, state: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE issue_id = ?1 AND state = ?2",
                params![issue, state],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| sql(&self.path, e))
    }

    /// Deliveries of an issue in one state: (email, attempts, last reply).
    pub fn deliveries_in(
        &self,
        issue: i64,
        state: &str,
    ) -> Result<Vec<(String, i64, Option<String>)>, StoreError> {
        self.rows(
            "SELECT email, attempts, last_reply FROM deliveries WHERE issue_id = ?1 AND state = ?2 ORDER BY address",
            params![issue, state],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every delivery to one address, oldest issue first.
    pub fn deliveries_to(&self, address: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.rows(
            "SELECT issue_id, state, attempts, last_reply, updated_at FROM deliveries WHERE address = ?1 ORDER BY issue_id",
            [address.trim().to_lowercase()],
            |r| {
                Ok(DeliveryRecord {
                    issue: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    last_reply: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )
    }
}

/// Adds a `pending` delivery of issue `id` per recipient `recipients` gives that is not
/// suppressed; returns how many were added, and what reading the recipients said.
fn add_deliveries(
    tx: &rusqlite::Transaction<'_>,
    p: &std::path::Path,
    id: i64,
    recipients: impl FnOnce(&mut dyn FnMut(&str, &str, &str)) -> Result<(), String>,
    message_id: impl Fn(i64, &str) -> String,
) -> Result<(usize, Result<(), String>), StoreError> {
    // Two single-row statements, not one INSERT … SELECT: SQLite keeps a statement journal on
    // disk for a statement that may change several rows, and writing it was most of the time
    // an issue of 200,000 took to make.
    let mut suppressed = tx
        .prepare(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address = ?1)
                 OR EXISTS (SELECT 1 FROM suppressions WHERE address = ?2)",
        )
        .map_err(|e| sql(p, e))?;
    // A suppression purged of its address is kept as the address's hash; without any, no
    // address needs hashing.
    let any_hashed: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address >= 'sha256:' AND address < 'sha256;')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| sql(p, e))?;
    let mut add = tx
        .prepare(
            "INSERT OR IGNORE INTO deliveries (issue_id, address, email, name, state, message_id)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        )
        .map_err(|e| sql(p, e))?;
    let mut failed = None;
    let mut added = 0;
    let read = recipients(&mut |address, email, name| {
        if failed.is_some() {
            return;
        }
        let hashed = any_hashed.then(|| super::signups::hashed_address(address));
        let hashed = hashed.as_deref().unwrap_or(address);
        let added_one = suppressed
            .query_row(params![address, hashed], |r| r.get::<_, bool>(0))
            .and_then(|skip| match skip {
                true => Ok(0),
                false => add.execute(params![id, address, email, name, message_id(id, address)]),
            });
        match added_one {
            Ok(n) => added += n,
            Err(e) => failed = Some(e),
        }
    });
    match failed {
        Some(e) => Err(sql(p, e)),
        None => Ok((added, read)),
    }
}
