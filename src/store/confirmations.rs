//! Sign-up confirmation emails as a queue, retried like issue deliveries: a request from the
//! web form makes its sign-up's confirmation *due*; a sender claims it for a lease (so that two
//! processes on one folder never send it twice), sends, and records the outcome: sent (its
//! time is what the one-per-hour rule counts), refused for good (a 5xx for the address), or
//! due again later (relay down, a 4xx, a timeout). A process that dies mid-send leaves the
//! claim to expire, and the confirmation is sent by whoever runs next.

use chrono::{DateTime, TimeDelta, Utc};
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

    /// Whether a confirmation was *sent* to an address less than `pause` ago.
    pub(crate) fn confirmation_sent_within(
        &self,
        address: &str,
        pause: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row: Option<(Option<String>, i64)> = self
            .conn
            .query_row(
                "SELECT confirmation_sent_at, confirmations_unanswered FROM signups
                 WHERE address = ?1",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        let Some((Some(t), unanswered)) = row else {
            return Ok(false);
        };
        // Each confirmation nobody answered doubles the pause, up to a week: a stranger
        // posting someone's address to the form gets them a handful of mails, not one an hour.
        let doublings = unanswered.clamp(1, 16) as u32 - 1;
        let pause = (pause * 2i32.pow(doublings.min(10))).min(TimeDelta::days(7));
        Ok(now.signed_duration_since(self.parse_time(&t)?) < pause)
    }

    /// A time this module wrote; anything else is the store's error, never a guess.
    fn parse_time(&self, text: &str) -> Result<DateTime<Utc>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SignupRequest;

    fn request(store: &Store, email: &str, now: DateTime<Utc>) -> bool {
        let req = SignupRequest {
            email,
            name: "",
            list: "web",
            consent_text: "同意",
            client_ip: None,
        };
        store
            .request_signup(&req, TimeDelta::hours(1), now)
            .unwrap()
    }

    #[test]
    fn each_confirmation_nobody_answers_doubles_the_pause_for_that_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut now = Utc::now();
        let mut gaps = Vec::new();
        for _ in 0..4 {
            // Asked again every 10 minutes until a confirmation can go; then it is sent.
            let mut waited = TimeDelta::zero();
            while !request(&store, "target@example.jp", now) {
                now += TimeDelta::minutes(10);
                waited += TimeDelta::minutes(10);
            }
            gaps.push(waited.num_minutes());
            let c = store
                .claim_confirmation(
                    now,
                    now + TimeDelta::minutes(3),
                    "h",
                    now + TimeDelta::hours(72),
                )
                .unwrap()
                .expect("due");
            store
                .confirmation_done(&c.address, &ConfirmationOutcome::Sent, now)
                .unwrap();
        }
        assert_eq!(
            gaps,
            [0, 60, 120, 240],
            "1 h, then 2 h, then 4 h between mails"
        );
    }

    #[test]
    fn a_deferred_confirmation_is_claimed_again_once_due_and_only_a_sent_one_counts_for_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let lease = now + TimeDelta::minutes(3);
        let expires = now + TimeDelta::hours(72);
        assert!(request(&store, "a@example.jp", now));
        let c = store
            .claim_confirmation(now, lease, "h1", expires)
            .unwrap()
            .expect("due at once");
        assert_eq!((c.email.as_str(), c.attempts), ("a@example.jp", 0));
        assert_eq!(
            store.claim_confirmation(now, lease, "h2", expires).unwrap(),
            None,
            "a claimed confirmation is not claimed twice"
        );
        let retry_at = now + TimeDelta::seconds(2);
        let deferred = ConfirmationOutcome::Deferred {
            error: "connection refused".into(),
            retry_at,
        };
        store
            .confirmation_done("a@example.jp", &deferred, now)
            .unwrap();
        assert!(
            !request(&store, "a@example.jp", now),
            "still queued: no second"
        );
        assert_eq!(store.next_confirmation_due().unwrap(), Some(retry_at));
        assert_eq!(
            store.claim_confirmation(now, lease, "h3", expires).unwrap(),
            None
        );
        let later = retry_at + TimeDelta::seconds(1);
        let c = store
            .claim_confirmation(later, lease, "h4", expires)
            .unwrap()
            .expect("due again");
        assert_eq!(c.attempts, 1);
        store
            .confirmation_done("a@example.jp", &ConfirmationOutcome::Sent, later)
            .unwrap();
        assert_eq!(store.next_confirmation_due().unwrap(), None);
        assert!(
            !request(&store, "a@example.jp", later),
            "sent within the hour"
        );
        let next_hour = later + TimeDelta::minutes(61);
        assert!(request(&store, "a@example.jp", next_hour));
    }
}
