//! The record of each issue the bar's rules ask a lawyer to keep (日弁連「弁護士の業務広告に
//! 関する規程」第11条: the advertisement and when and to whom it was sent): the issue's content
//! and its recipients stay for `records.keep` after the issue, even for readers who have
//! unsubscribed since, and are purged after that.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{sql, Store, StoreError};

/// One recipient of an issue, as the record lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecipient {
    pub email: String,
    pub name: String,
    /// `sent`, `failed`, `pending`…
    pub state: String,
    /// When the server accepted it (RFC 3339), for `sent`.
    pub sent_at: Option<String>,
    /// The server's last reply.
    pub reply: Option<String>,
}

impl Store {
    /// Every recipient of `issue`, by address.
    pub fn issue_recipients(&self, issue: i64) -> Result<Vec<IssueRecipient>, StoreError> {
        self.rows(
            "SELECT email, name, state, updated_at, last_reply FROM deliveries
             WHERE issue_id = ?1 ORDER BY address",
            [issue],
            |r| {
                let state: String = r.get(2)?;
                let at: Option<String> = r.get(3)?;
                Ok(IssueRecipient {
                    email: r.get(0)?,
                    name: r.get(1)?,
                    sent_at: at.filter(|_| state == "sent"),
                    state,
                    reply: r.get(4)?,
                })
            },
        )
    }

    /// Purges the records of finished issues made before `cutoff`: their recipients and
    /// their content (the subject stays, so issue numbers keep their meaning). Returns how
    /// many issues were purged.
    pub fn purge_expired_records(&mut self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let p = self.path.clone();
        let cutoff = cutoff.to_rfc3339();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        tx.execute(
            "DELETE FROM deliveries WHERE issue_id IN
               (SELECT id FROM issues WHERE state = 'done' AND created_at < ?1)",
            params![cutoff],
        )
        .map_err(|e| sql(&p, e))?;
        // An unsubscribe link's id is kept only while something still names its address.
        tx.execute(
            "DELETE FROM unsubscribe_ids
             WHERE address NOT IN (SELECT address FROM deliveries)
               AND address NOT IN (SELECT address FROM signups)",
            [],
        )
        .map_err(|e| sql(&p, e))?;
        let purged = tx
            .execute(
                "UPDATE issues SET html = '', text = ''
                 WHERE state = 'done' AND created_at < ?1 AND (html != '' OR text != '')",
                params![cutoff],
            )
            .map_err(|e| sql(&p, e))?;
        tx.commit().map_err(|e| sql(&p, e))?;
        Ok(purged)
    }
}
