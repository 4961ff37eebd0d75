//! Sign-ups: people who subscribed themselves through the web form (double opt-in) or whom the
//! office added, each with the consent record 特定電子メール法 (Art. 3) asks the sender to keep:
//! how and when consent was given and the exact text shown, kept once per version by its hash.
//!
//! A sign-up goes `pending → subscribed → unsubscribed`; an unsubscribed address that signs up
//! again is `pending` until it confirms anew. Confirmation tokens are stored only as hashes.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{sql, Store, StoreError};

/// A sign-up as stored, with its consent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signup {
    pub address: String,
    pub email: String,
    pub name: String,
    pub list: String,
    /// `pending`, `subscribed` or `unsubscribed`.
    pub state: String,
    /// `web form` or `office`.
    pub method: String,
    /// The consent text shown (web form) when it was given.
    pub consent_text: Option<String>,
    /// What the office noted (how and when consent was given by phone, say).
    pub consent_note: Option<String>,
    pub requested_at: String,
    pub confirmed_at: Option<String>,
    pub unsubscribed_at: Option<String>,
    /// The client's address, when `subscribe.keep_ip` is set.
    pub client_ip: Option<String>,
}

/// A request from the web form.
#[derive(Debug, Clone)]
pub struct SignupRequest<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub list: &'a str,
    pub consent_text: &'a str,
    pub client_ip: Option<&'a str>,
}

/// What the store knows of an address that asks to sign up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupStanding {
    /// Subscribed and not suppressed.
    pub subscribed: bool,
    /// A confirmation is queued and not yet sent.
    pub confirmation_queued: bool,
    /// When the last confirmation was *sent* (one that never went out locks nobody out).
    pub last_confirmation_sent: Option<DateTime<Utc>>,
    /// Confirmations sent since the address last confirmed, none answered.
    pub unanswered: i64,
}

/// How long a consent record is kept after the last mail to an address that unsubscribed:
/// 特定電子メール法's ordinance asks for one month.
pub const KEEP_AFTER_LAST_MAIL: chrono::TimeDelta = chrono::TimeDelta::days(31);

/// What a suppressed address becomes once its records are purged: enough to keep it
/// suppressed, nothing to read it back.
pub fn hashed_address(address: &str) -> String {
    format!("sha256:{}", digest(&crate::subscribers::key(address)))
}

/// The SHA-256 (hex) a token or a consent text is stored under.
pub fn digest(text: &str) -> String {
    crate::content::hex(&Sha256::digest(text.as_bytes()))
}

const COLUMNS: &str =
    "s.address, s.email, s.name, s.list, s.state, s.method, c.text, s.consent_note,
     s.requested_at, s.confirmed_at, s.unsubscribed_at, s.client_ip
     FROM signups s LEFT JOIN consent_texts c ON c.hash = s.consent_hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Signup> {
    Ok(Signup {
        address: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        list: r.get(3)?,
        state: r.get(4)?,
        method: r.get(5)?,
        consent_text: r.get(6)?,
        consent_note: r.get(7)?,
        requested_at: r.get(8)?,
        confirmed_at: r.get(9)?,
        unsubscribed_at: r.get(10)?,
        client_ip: r.get(11)?,
    })
}

impl Store {
    /// Keeps a consent text once; returns its hash.
    fn consent(&self, text: &str, now: &str) -> Result<String, StoreError> {
        let hash = digest(text);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO consent_texts (hash, text, first_used) VALUES (?1, ?2, ?3)",
                params![hash, text, now],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(hash)
    }

    /// What the store knows of an address that asks to sign up (`None`: nothing), for the
    /// sign-up's rule on whether a confirmation may go ([`crate::server`]'s sign-up decides).
    pub fn signup_standing(&self, address: &str) -> Result<Option<SignupStanding>, StoreError> {
        let row: Option<(String, Option<String>, i64)> = self
            .conn
            .query_row(
                "SELECT state, confirmation_sent_at, confirmations_unanswered FROM signups
                 WHERE address = ?1",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        let Some((state, sent, unanswered)) = row else {
            return Ok(None);
        };
        Ok(Some(SignupStanding {
            subscribed: state == "subscribed" && !self.is_suppressed(address)?,
            confirmation_queued: self.confirmation_queued(address)?,
            last_confirmation_sent: sent.map(|t| self.parse_time(&t)).transpose()?,
            unanswered,
        }))
    }

    /// Records a request from the web form and queues its confirmation email
    /// ([`Store::claim_confirmation`]); whether one may be queued is the caller's decision
    /// (from [`Store::signup_standing`]). The address is the key of `req.email`, which the
    /// caller has made canonical.
    ///
    /// A record that was once confirmed keeps its consent record (who, when, what text, from
    /// where) until its reader confirms again: anyone can post an address to the form, and a
    /// stranger's request must not rewrite a former subscriber's record.
    pub fn record_signup_request(
        &self,
        req: &SignupRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let address = crate::subscribers::key(req.email);
        let now_s = now.to_rfc3339();
        let consent = self.consent(req.consent_text, &now_s)?;
        self.conn
            .execute(
                "INSERT INTO signups (address, email, name, list, state, method, consent_hash,
                     requested_at, client_ip, confirmation_due, confirmation_attempts)
                 VALUES (?1, ?2, ?3, ?4, 'pending', 'web form', ?5, ?6, ?7, ?6, 0)
                 ON CONFLICT(address) DO UPDATE SET
                     email = CASE WHEN confirmed_at IS NULL THEN ?2 ELSE email END,
                     name = CASE WHEN confirmed_at IS NULL THEN ?3 ELSE name END,
                     list = CASE WHEN confirmed_at IS NULL THEN ?4 ELSE list END,
                     method = CASE WHEN confirmed_at IS NULL THEN 'web form' ELSE method END,
                     consent_hash = CASE WHEN confirmed_at IS NULL THEN ?5 ELSE consent_hash END,
                     requested_at = CASE WHEN confirmed_at IS NULL THEN ?6 ELSE requested_at END,
                     client_ip = CASE WHEN confirmed_at IS NULL THEN ?7 ELSE client_ip END,
                     state = 'pending',
                     confirmation_due = ?6, confirmation_attempts = 0,
                     confirmation_error = NULL",
                params![
                    address,
                    req.email.trim(),
                    req.name.trim(),
                    req.list,
                    consent,
                    now_s,
                    req.client_ip,
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(())
    }

    /// The sign-up a confirmation token (by hash) belongs to, while the token is valid.
    pub fn signup_by_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Signup>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} WHERE s.token_hash = ?1 AND s.token_expires > ?2"),
                params![token_hash, now.to_rfc3339()],
                row,
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Confirms the sign-up of a valid token: the address is subscribed (again) and any
    /// suppression of it is lifted — the person asked for the mail themselves. Confirming twice
    /// changes nothing. Returns the sign-up, or `None` for an unknown or expired token.
    pub fn confirm_signup(
        &mut self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Signup>, StoreError> {
        let Some(s) = self.signup_by_token(token_hash, now)? else {
            return Ok(None);
        };
        if s.state != "subscribed" {
            let p = self.path.clone();
            let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
            tx.execute(
                "UPDATE signups SET state = 'subscribed', confirmed_at = ?2, unsubscribed_at = NULL,
                     confirmations_unanswered = 0
                 WHERE address = ?1",
                params![s.address, now.to_rfc3339()],
            )
            .map_err(|e| sql(&p, e))?;
            tx.execute(
                "DELETE FROM suppressions WHERE address IN (?1, ?2)",
                [&s.address, &hashed_address(&s.address)],
            )
            .map_err(|e| sql(&p, e))?;
            tx.commit().map_err(|e| sql(&p, e))?;
        }
        self.signup(&s.address)
    }

    /// Adds an address on the office's word (a request by phone): subscribed at once, with the
    /// office's note of how consent was given; lifts a suppression of it.
    pub fn add_signup(
        &self,
        email: &str,
        name: &str,
        list: &str,
        consent_note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let address = crate::subscribers::key(email);
        let now_s = now.to_rfc3339();
        self.conn
            .execute(
                "INSERT INTO signups (address, email, name, list, state, method, consent_note,
                     requested_at, confirmed_at)
                 VALUES (?1, ?2, ?3, ?4, 'subscribed', 'office', ?5, ?6, ?6)
                 ON CONFLICT(address) DO UPDATE SET email = ?2, name = ?3, list = ?4,
                     state = 'subscribed', method = 'office', consent_note = ?5,
                     confirmed_at = ?6, unsubscribed_at = NULL, token_hash = NULL",
                params![
                    address,
                    email.trim(),
                    name.trim(),
                    list,
                    consent_note,
                    now_s
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        self.conn
            .execute(
                "DELETE FROM suppressions WHERE address IN (?1, ?2)",
                [&address, &hashed_address(&address)],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(())
    }

    /// Marks a sign-up unsubscribed (the address is suppressed separately).
    pub fn unsubscribe_signup(&self, address: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE signups SET state = 'unsubscribed', unsubscribed_at = ?2, token_hash = NULL
                 WHERE address = ?1 AND state != 'unsubscribed'",
                params![crate::subscribers::key(address), now.to_rfc3339()],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// One sign-up, by address.
    pub fn signup(&self, address: &str) -> Result<Option<Signup>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} WHERE s.address = ?1"),
                [crate::subscribers::key(address)],
                row,
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Every sign-up, by address.
    pub fn signups(&self) -> Result<Vec<Signup>, StoreError> {
        self.rows(&format!("SELECT {COLUMNS} ORDER BY s.address"), [], row)
    }

    /// Purges the records of addresses that unsubscribed (or were suppressed) and were last
    /// mailed, or unsubscribed, more than [`KEEP_AFTER_LAST_MAIL`] ago: the sign-up and its
    /// consent record go, the deliveries forget the name and address, and the suppression is
    /// kept as a hash. Returns how many addresses were purged.
    ///
    /// The recipients of issues made since `records_from` are the issue record the bar's
    /// rules ask to keep (`records.keep`): their deliveries keep the address and name until
    /// [`Store::purge_expired_records`] purges the whole record.
    pub fn purge_old_records(
        &mut self,
        now: DateTime<Utc>,
        records_from: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let records_from = records_from.to_rfc3339();
        let cutoff = (now - KEEP_AFTER_LAST_MAIL).to_rfc3339();
        let old: Vec<String> = self.rows(
            "SELECT s.address FROM suppressions s
             WHERE s.address NOT LIKE 'sha256:%' AND s.at < ?1
               AND coalesce((SELECT max(updated_at) FROM deliveries d
                             WHERE d.address = s.address AND d.state = 'sent'), '') < ?1",
            [&cutoff],
            |r| r.get(0),
        )?;
        let p = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        for address in &old {
            let hashed = hashed_address(address);
            for q in [
                "DELETE FROM signups WHERE address = ?1",
                "DELETE FROM unsubscribe_ids WHERE address = ?1",
            ] {
                tx.execute(q, [address]).map_err(|e| sql(&p, e))?;
            }
            tx.execute(
                "UPDATE deliveries SET address = ?2, email = '', name = '' WHERE address = ?1
                   AND issue_id IN (SELECT id FROM issues WHERE created_at < ?3)",
                params![address, hashed, records_from],
            )
            .map_err(|e| sql(&p, e))?;
            tx.execute(
                "UPDATE OR REPLACE suppressions SET address = ?2 WHERE address = ?1",
                params![address, hashed],
            )
            .map_err(|e| sql(&p, e))?;
        }
        tx.commit().map_err(|e| sql(&p, e))?;
        Ok(old.len())
    }

    /// Whether an address is suppressed (as itself, or as its hash once purged).
    pub fn is_suppressed(&self, address: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM suppressions WHERE address IN (?1, ?2)",
                [crate::subscribers::key(address), hashed_address(address)],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| sql(&self.path, e))
    }

    /// When mail last went to an address (a delivery acknowledged by the server).
    pub fn last_sent(&self, address: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT max(updated_at) FROM deliveries WHERE address = ?1 AND state = 'sent'",
                [crate::subscribers::key(address)],
                |r| r.get(0),
            )
            .map_err(|e| sql(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_strangers_request_never_rewrites_a_former_subscribers_consent_record() {
        let (_dir, store) = store();
        let then = Utc::now() - chrono::TimeDelta::days(10);
        store
            .add_signup("hanako@example.jp", "佐藤 花子", "web", "電話で同意", then)
            .unwrap();
        store.unsubscribe_signup("hanako@example.jp", then).unwrap();
        let before = store.signup("hanako@example.jp").unwrap().unwrap();
        let stranger = SignupRequest {
            email: "HANAKO@example.jp",
            name: "攻撃者",
            list: "other",
            consent_text: "別の文面",
            client_ip: Some("198.51.100.9"),
        };
        store.record_signup_request(&stranger, Utc::now()).unwrap();
        assert_eq!(
            store.signup("hanako@example.jp").unwrap().unwrap().state,
            "pending"
        );
        let after = store.signup("hanako@example.jp").unwrap().unwrap();
        assert_eq!(
            (
                &after.email,
                &after.name,
                &after.list,
                &after.method,
                &after.consent_note,
                &after.requested_at,
                &after.confirmed_at,
                &after.client_ip
            ),
            (
                &before.email,
                &before.name,
                &before.list,
                &before.method,
                &before.consent_note,
                &before.requested_at,
                &before.confirmed_at,
                &before.client_ip
            )
        );
    }

    #[test]
    fn records_of_addresses_gone_for_a_month_are_purged_to_a_hash_that_still_suppresses() {
        let (_dir, mut store) = store();
        let now = Utc::now();
        let long_ago = now - chrono::TimeDelta::days(60);
        store
            .add_signup("Old@Example.JP", "旧", "web", "電話で同意", long_ago)
            .unwrap();
        store
            .unsubscribe_signup("old@example.jp", long_ago)
            .unwrap();
        store
            .suppress("old@example.jp", "unsubscribed", long_ago)
            .unwrap();
        store
            .add_signup("recent@example.jp", "新", "web", "電話で同意", now)
            .unwrap();
        store
            .suppress("recent@example.jp", "unsubscribed", now)
            .unwrap();

        assert_eq!(store.purge_old_records(now, now).unwrap(), 1);
        assert!(
            store.signup("old@example.jp").unwrap().is_none(),
            "record gone"
        );
        assert!(
            store.is_suppressed("OLD@example.jp").unwrap(),
            "still suppressed"
        );
        let kept: Vec<String> = store
            .suppressions()
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert!(kept.iter().all(|a| a != "old@example.jp"), "{kept:?}");
        assert!(kept.contains(&hashed_address("old@example.jp")));
        assert!(
            store.signup("recent@example.jp").unwrap().is_some(),
            "a month not yet over"
        );

        // The hash keeps the address out of an issue.
        let issue = store.create_issue(
            1,
            now,
            ("s", "h", "t"),
            &[],
            |add| {
                add("old@example.jp", "old@example.jp", "旧");
                add("new@example.jp", "new@example.jp", "");
                Ok(())
            },
            |id, a| format!("<{id}.{a}>"),
        );
        let issue = issue.unwrap();
        assert_eq!(store.count_in(issue.id, "pending").unwrap(), 1);

        // Signing up again and confirming lifts even a hashed suppression.
        store
            .add_signup("old@example.jp", "旧", "web", "再登録", now)
            .unwrap();
        assert!(!store.is_suppressed("old@example.jp").unwrap());
    }
}
