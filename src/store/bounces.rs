//! Bounces read from the mailbox: each report once (by its Message-ID, else its file name), what
//! it said about each address, and the suppressions that follow (DESIGN.md, "Bounces").

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, Store, StoreError};

/// Soft bounces (the reader's side) that suppress an address within [`SOFT_WINDOW`].
pub const SOFT_LIMIT: i64 = 3;
/// The window soft bounces are counted in.
pub const SOFT_WINDOW: TimeDelta = TimeDelta::days(30);

/// What a report said about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRecord {
    pub address: String,
    pub issue: Option<i64>,
    /// `address gone`, `complaint`, `reader side`, `sender side`, `other`.
    pub cause: String,
    pub status: String,
    pub diagnostic: String,
}

impl Store {
    /// What came of a report read already (`matched`, or why it was kept); `None` when new.
    pub fn report_outcome(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT outcome FROM bounce_reports WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Records a report and what it said, in one transaction, and suppresses what must be: an
    /// address gone or a complaint at once, the reader's side at the third time in 30 days.
    /// Returns the addresses suppressed now.
    pub fn record_report(
        &mut self,
        id: &str,
        outcome: &str,
        records: &[BounceRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let p = self.path.clone();
        let now_s = now.to_rfc3339();
        let since = (now - SOFT_WINDOW).to_rfc3339();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        tx.execute(
            "INSERT OR IGNORE INTO bounce_reports (id, read_at, outcome) VALUES (?1, ?2, ?3)",
            params![id, now_s, outcome],
        )
        .map_err(|e| sql(&p, e))?;
        let mut suppressed = Vec::new();
        for r in records {
            tx.execute(
                "INSERT INTO bounces (address, at, issue_id, cause, status, diagnostic, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.address,
                    now_s,
                    r.issue,
                    r.cause,
                    r.status,
                    r.diagnostic,
                    id
                ],
            )
            .map_err(|e| sql(&p, e))?;
            let reason = match r.cause.as_str() {
                "address gone" => Some(format!(
                    "bounced: {} {}",
                    r.status,
                    first_line(&r.diagnostic)
                )),
                "complaint" => Some("complained".to_string()),
                "reader side" => {
                    let soft: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM bounces WHERE address = ?1 AND cause = 'reader side' AND at >= ?2",
                            params![r.address, since],
                            |row| row.get(0),
                        )
                        .map_err(|e| sql(&p, e))?;
                    (soft >= SOFT_LIMIT).then(|| format!("bounced: {soft} soft bounces in 30 days"))
                }
                _ => None,
            };
            if let Some(reason) = reason {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO suppressions (address, reason, at) VALUES (?1, ?2, ?3)",
                        params![r.address, reason, now_s],
                    )
                    .map_err(|e| sql(&p, e))?;
                if n == 1 {
                    suppressed.push(r.address.clone());
                }
            }
        }
        tx.commit().map_err(|e| sql(&p, e))?;
        Ok(suppressed)
    }

    /// Every bounce of one address: (time, cause, status, diagnostic).
    pub fn bounces_of(
        &self,
        address: &str,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        self.rows(
            "SELECT at, cause, status, diagnostic FROM bounces WHERE address = ?1 ORDER BY at",
            [crate::subscribers::key(address)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// Per issue: how many of its addresses bounced for good or on the reader's side, and how
    /// many were sent.
    pub fn bounce_rates(&self) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        self.rows(
            "SELECT i.id,
                    (SELECT count(DISTINCT b.address) FROM bounces b
                     WHERE b.issue_id = i.id AND b.cause IN ('address gone', 'reader side')),
                    (SELECT count(*) FROM deliveries d WHERE d.issue_id = i.id AND d.state = 'sent')
             FROM issues i ORDER BY i.id DESC",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Reports read but not matched to a subscriber (kept in the mailbox): (id, outcome).
    pub fn kept_reports(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT id, outcome FROM bounce_reports WHERE outcome != 'matched' ORDER BY read_at",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The issues that went to an address, newest first.
    pub fn issues_to(&self, address: &str) -> Result<Vec<i64>, StoreError> {
        self.rows(
            "SELECT issue_id FROM deliveries WHERE address = ?1 ORDER BY issue_id DESC",
            [crate::subscribers::key(address)],
            |r| r.get(0),
        )
    }

    /// Deliveries of an issue by the domain they go to: (domain, sent, not yet sent).
    pub fn progress_by_domain(&self, issue: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.rows(
            "SELECT substr(address, instr(address, '@') + 1) AS domain,
                    sum(state = 'sent'), sum(state IN ('pending', 'sending'))
             FROM deliveries WHERE issue_id = ?1 GROUP BY domain",
            [issue],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The addresses of an issue's deliveries (to find a VERP tag's address).
    pub fn addresses_of(&self, issue: i64) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT address FROM deliveries WHERE issue_id = ?1",
            [issue],
            |r| r.get(0),
        )
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
