//! Requests to the running daemon: a command that must not do the daemon's work beside it
//! (`send` while `run` holds the folder's sender lock) writes a row here; the daemon takes it
//! within a second, does the work and writes its answer, which the command is waiting for.
//!
//! A request goes `waiting → taken → answered`; a daemon that dies with a request `taken`
//! leaves it for the next daemon ([`Store::requeue_requests`]), and the command that made it may
//! take it back (`abandoned`) and do the work itself once it holds the lock.

/// The request an editor's action makes (a proof link acted on, the store already changed):
/// the daemon sends at once if a tick passed meanwhile.
pub const NUDGE: &str = "nudge";

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, Store, StoreError};

/// A request as the daemon takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    /// What is asked: `send`.
    pub kind: String,
    /// Its arguments, as the kind defines them (JSON).
    pub args: String,
}

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    Waiting,
    Taken,
    /// Done, with the daemon's answer (JSON, as the kind defines it).
    Answered(String),
    /// Taken back by the command that made it.
    Abandoned,
}

impl Store {
    /// Records a request for the daemon; returns its id.
    pub fn request(&self, kind: &str, args: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO requests (kind, args, requested_at, requested_by, state)
                 VALUES (?1, ?2, ?3, ?4, 'waiting')",
                params![kind, args, now.to_rfc3339(), std::process::id()],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Takes every waiting request, oldest first (the daemon, holding the sender lock).
    pub fn take_requests(&self, now: DateTime<Utc>) -> Result<Vec<Request>, StoreError> {
        let mut taken = self.rows(
            "UPDATE requests SET state = 'taken', taken_at = ?1 WHERE state = 'waiting'
             RETURNING id, kind, args",
            [now.to_rfc3339()],
            |r| {
                Ok(Request {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    args: r.get(2)?,
                })
            },
        )?;
        taken.sort_by_key(|r| r.id);
        Ok(taken)
    }

    /// Gives the requests a daemon took and never answered (it died) to the next one.
    pub fn requeue_requests(&self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE requests SET state = 'waiting' WHERE state = 'taken'",
                [],
            )
            .map_err(|e| sql(&self.path, e))
    }

    /// Writes the answer to a request (unless its maker took it back meanwhile).
    pub fn answer_request(
        &self,
        id: i64,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE requests SET state = 'answered', answer = ?2, answered_at = ?3
                 WHERE id = ?1 AND state IN ('waiting', 'taken')",
                params![id, answer, now.to_rfc3339()],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Takes a request back that no daemon answered; false when it was answered meanwhile.
    pub fn abandon_request(&self, id: i64) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE requests SET state = 'abandoned' WHERE id = ?1 AND state IN ('waiting', 'taken')",
                [id],
            )
            .map(|n| n > 0)
            .map_err(|e| sql(&self.path, e))
    }

    /// Where request `id` is; `None` when there is no such request.
    pub fn request_state(&self, id: i64) -> Result<Option<RequestState>, StoreError> {
        self.conn
            .query_row(
                "SELECT state, answer FROM requests WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
            .map(|row| {
                row.map(|(state, answer)| match state.as_str() {
                    "waiting" => RequestState::Waiting,
                    "taken" => RequestState::Taken,
                    "answered" => RequestState::Answered(answer.unwrap_or_default()),
                    _ => RequestState::Abandoned,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_and_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let id = store.request("send", "{}", now).unwrap();
        assert_eq!(
            store.request_state(id).unwrap(),
            Some(RequestState::Waiting)
        );
        let taken = store.take_requests(now).unwrap();
        assert_eq!(taken.len(), 1);
        assert!(store.take_requests(now).unwrap().is_empty(), "taken once");
        store.answer_request(id, "{\"ok\":1}", now).unwrap();
        assert_eq!(
            store.request_state(id).unwrap(),
            Some(RequestState::Answered("{\"ok\":1}".into()))
        );
        assert!(!store.abandon_request(id).unwrap(), "an answer is kept");
    }

    #[test]
    fn a_request_taken_back_is_not_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let id = store.request("send", "{}", now).unwrap();
        store.take_requests(now).unwrap();
        assert_eq!(store.requeue_requests().unwrap(), 1);
        assert!(store.abandon_request(id).unwrap());
        store.answer_request(id, "late", now).unwrap();
        assert_eq!(
            store.request_state(id).unwrap(),
            Some(RequestState::Abandoned)
        );
        assert!(store.take_requests(now).unwrap().is_empty());
    }
}
