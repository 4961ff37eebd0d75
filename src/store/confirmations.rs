//! Sign-up confirmation emails as a queue, retried like issue deliveries: a request from the
//! web form makes its sign-up's confirmation *due*; a sender claims it for a lease (so that two
//! processes on one folder never send it twice), sends, and records the outcome: sent (its
//! time is what the one-per-hour rule counts), refused for good (a 5xx for the address), or
//! due again later (relay down, a 4xx, a timeout). A process that dies mid-send leaves the
//! claim to expire, and the confirmation is sent by whoever runs next.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, Store, StoreError};

/// A confirmation claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub address: String,
    pub email: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub requested_at: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmationOutcome {
    /// The server took it (or it was written to `outbox/`).
    Sent,
    /// A 5xx for this address: never retried (a new request may try again).
    Refused(String),
    /// Not sent for a cause that may pass: due again at `retry_at`.
    Deferred {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

impl Store {
    /// Claims the oldest due confirmation of a pending sign-up until `lease_until`, with the
    /// hash and expiry of the token its link will carry (each attempt has a new token; the
    /// link of an attempt that never went out is never seen).
    pub fn claim_confirmation(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token_hash: &str,
        token_expires: DateTime<Utc>,
    ) -> Result<Option<Confirmation>, StoreError> {
        let due: Option<String> = self
            .conn
            .query_row(
                "SELECT address FROM signups
                 WHERE state = 'pending' AND confirmation_due IS NOT NULL
                   AND confirmation_due <= ?1
                 ORDER BY confirmation_due LIMIT 1",
                [now.to_rfc3339()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        let Some(address) = due else {
            return Ok(None);
        };
        // Only one claimant wins the row: the update repeats the condition.
        let claimed = self
            .conn
            .execute(
                "UPDATE signups SET confirmation_due = ?2, token_hash = ?3, token_expires = ?4
                 WHERE address = ?1 AND state = 'pending' AND confirmation_due IS NOT NULL
                   AND confirmation_due <= ?5",
                params![
                    address,
                    lease_until.to_rfc3339(),
                    token_hash,
                    token_expires.to_rfc3339(),
                    now.to_rfc3339()
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        if claimed == 0 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT address, email, confirmation_attempts, requested_at FROM signups
                 WHERE address = ?1",
                [&address],
                |r| {
                    Ok(Confirmation {
                        address: r.get(0)?,
                        email: r.get(1)?,
                        attempts: r.get(2)?,
                        requested_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Records how an attempt on a claimed confirmation ended.
    pub fn confirmation_done(
        &self,
        address: &str,
        outcome: &ConfirmationOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (due, sent, error) = match outcome {
            ConfirmationOutcome::Sent => (None, Some(now.to_rfc3339()), None),
            ConfirmationOutcome::Refused(reply) => (None, None, Some(reply.as_str())),
            ConfirmationOutcome::Deferred { error, retry_at } => {
                (Some(retry_at.to_rfc3339()), None, Some(error.as_str()))
            }
        };
        self.conn
            .execute(
                "UPDATE signups SET confirmation_due = ?2,
                     confirmation_sent_at = coalesce(?3, confirmation_sent_at),
                     confirmation_error = ?4,
                     confirmation_attempts = confirmation_attempts + 1,
                     confirmations_unanswered = confirmations_unanswered
                         + (CASE WHEN ?3 IS NULL THEN 0 ELSE 1 END)
                 WHERE address = ?1",
                params![address, due, sent, error],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// When the next confirmation falls due (a claim's lease counts), if any is queued.
    pub fn next_confirmation_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due: Option<String> = self
            .conn
            .query_row(
                "SELECT min(confirmation_due) FROM signups
                 WHERE state = 'pending' AND confirmation_due IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .map_err(|e| sql(&self.path, e))?;
        match due {
            None => Ok(None),
            Some(t) => self.parse_time(&t).map(Some),
        }
    }

    /// Whether an address has a confirmation queued and not yet sent.
    pub(crate) fn confirmation_queued(&self, address: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM signups WHERE address = ?1 AND state = 'pending'
                   AND confirmation_due IS NOT NULL",
                [address],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| sql(&self.path, e))
    }

    /// A time this module wrote; anything else is the store's error, never a guess.
    pub(super) fn parse_time(&self, text: &str) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                let e = rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                );
                sql(&self.path, e)
            })
    }
}
