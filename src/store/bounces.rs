//! Bounces: each report once (by its Message-ID, else its content hash, and by the name it
//! was first seen under), what it said about each address, and the suppressions that follow.
//! The verdict is [`crate::bounces`]'s; this module records it and applies it.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{sql, Store, StoreError};
use crate::bounces::{Cause, SOFT_WINDOW};

/// What a report (or a 5xx at RCPT or DATA) said about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRecord {
    pub address: String,
    pub issue: Option<i64>,
    /// The verdict of [`crate::bounces`].
    pub cause: Cause,
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

    /// Records a report under each of its `ids` (the first is the one shown; the others are
    /// names it is known by before it is parsed) and what it said, in one transaction, and
    /// applies each verdict. Returns the addresses suppressed now.
    pub fn record_report(
        &mut self,
        ids: &[&str],
        outcome: &str,
        records: &[BounceRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let p = self.path.clone();
        let now_s = now.to_rfc3339();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        for (n, id) in ids.iter().enumerate() {
            // The other names point at the first, so that `status` lists a report once.
            let outcome = match n {
                0 => outcome.to_string(),
                _ if outcome == "matched" => outcome.to_string(),
                _ => format!("{ALIAS}{}", ids[0]),
            };
            tx.execute(
                "INSERT OR IGNORE INTO bounce_reports (id, read_at, outcome) VALUES (?1, ?2, ?3)",
                params![id, now_s, outcome],
            )
            .map_err(|e| sql(&p, e))?;
        }
        let mut suppressed = Vec::new();
        for r in records {
            if apply(&tx, r, ids.first().copied().unwrap_or(""), now)? {
                suppressed.push(r.address.clone());
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

    /// Per issue: how many of its addresses bounced for good or on the reader's side (by a
    /// report or at RCPT/DATA), and how many were sent (delivered or refused).
    pub fn bounce_rates(&self) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        self.rows(
            "SELECT i.id,
                    (SELECT count(DISTINCT b.address) FROM bounces b
                     WHERE b.issue_id = i.id AND b.cause IN (?1, ?2)),
                    (SELECT count(*) FROM deliveries d WHERE d.issue_id = i.id AND d.state IN ('sent', 'failed'))
             FROM issues i ORDER BY i.id DESC",
            Cause::RATE_CAUSES,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Reports read but not matched to a subscriber (kept in the mailbox): (id, outcome).
    pub fn kept_reports(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT id, outcome FROM bounce_reports
             WHERE outcome != 'matched' AND outcome NOT LIKE 'same report as %' ORDER BY read_at",
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

/// What a name other than a report's first id records as its outcome (then the id shown).
const ALIAS: &str = "same report as ";

/// Records one verdict and applies [`crate::bounces::suppression`]'s rule to it, with the
/// address's count of bounces of the same cause in [`SOFT_WINDOW`]. Returns whether the
/// address was suppressed now. `report` names where the verdict came from (a report, or `smtp`).
pub(super) fn apply(
    tx: &Transaction<'_>,
    r: &BounceRecord,
    report: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let p = tx.path().map(std::path::PathBuf::from).unwrap_or_default();
    let now_s = now.to_rfc3339();
    tx.execute(
        "INSERT INTO bounces (address, at, issue_id, cause, status, diagnostic, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            r.address,
            now_s,
            r.issue,
            r.cause.as_str(),
            r.status,
            r.diagnostic,
            report
        ],
    )
    .map_err(|e| sql(&p, e))?;
    let since = (now - SOFT_WINDOW).to_rfc3339();
    let recent: i64 = tx
        .query_row(
            "SELECT count(*) FROM bounces WHERE address = ?1 AND cause = ?2 AND at >= ?3",
            params![r.address, r.cause.as_str(), since],
            |row| row.get(0),
        )
        .map_err(|e| sql(&p, e))?;
    let reason = crate::bounces::suppression(r.cause, &r.status, &r.diagnostic, recent);
    let Some(reason) = reason else {
        return Ok(false);
    };
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO suppressions (address, reason, at) VALUES (?1, ?2, ?3)",
            params![r.address, reason, now_s],
        )
        .map_err(|e| sql(&p, e))?;
    Ok(n == 1)
}
