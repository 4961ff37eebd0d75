//! Post by email's part of the store: each message of the editors' inbox, read once and known
//! by every name it had (its Message-ID, content hash, Maildir file name); the files it wrote
//! into `posts/` with the message they came from, until the receipt answered it.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{sql, Store, StoreError};

/// What came of one message of the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// Its Message-ID (`<…>`), else its content hash: the same for every name it is known by.
    pub message: String,
    pub read_at: String,
    /// The From address, lowercased.
    pub sender: String,
    pub subject: String,
    /// `taken`, `refused` (taken, nothing written), `stranger`, `forged` or `unreadable`.
    pub outcome: String,
    /// The files written and each refusal with why, one a line.
    pub detail: String,
}

/// The message a file came from, for the answer: To its sender, `In-Reply-To` and
/// `References` (RFC 5322 §3.6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Her Message-ID, `<…>`.
    pub message: String,
    pub sender: String,
    pub subject: String,
    /// Her `References` followed by her Message-ID, space-separated.
    pub refs: String,
    /// Attachments of the same message that were refused, `name: why`, one a line.
    pub refused: String,
}

impl Store {
    /// What came of the message known as `id`, if it was read.
    pub fn inbox_outcome(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT outcome FROM inbox_messages WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// The message known as `id`, if it was read.
    pub fn inbox_message(&self, id: &str) -> Result<Option<InboxMessage>, StoreError> {
        self.conn
            .query_row(
                "SELECT message, read_at, sender, subject, outcome, detail FROM inbox_messages WHERE id = ?1",
                [id],
                message_row,
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// Remembers message `m` under each name of `ids` (a name known already keeps its row).
    pub fn record_inbox(&self, ids: &[&str], m: &InboxMessage) -> Result<(), StoreError> {
        for id in ids {
            self.conn
                .execute(
                    "INSERT INTO inbox_messages (id, message, read_at, sender, subject, outcome, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
                    params![id, m.message, m.read_at, m.sender, m.subject, m.outcome, m.detail],
                )
                .map_err(|e| sql(&self.path, e))?;
        }
        Ok(())
    }

    /// Every message read, newest first, each once.
    pub fn inbox_messages(&self) -> Result<Vec<InboxMessage>, StoreError> {
        self.rows(
            "SELECT message, MIN(read_at), sender, subject, outcome, detail FROM inbox_messages
             GROUP BY message ORDER BY MIN(read_at) DESC, message",
            [],
            message_row,
        )
    }

    /// Records that `file` (its name in `posts/`) was written from `thread`'s message: the next
    /// receipt that names it answers that message.
    pub fn inbox_file_written(
        &self,
        file: &str,
        thread: &Thread,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO inbox_files (file, message, sender, subject, refs, refused, written_at, answered)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
                 ON CONFLICT(file) DO UPDATE SET message = ?2, sender = ?3, subject = ?4, refs = ?5,
                   refused = ?6, written_at = ?7, answered = 0",
                params![
                    file,
                    thread.message,
                    thread.sender,
                    thread.subject,
                    thread.refs,
                    thread.refused,
                    now.to_rfc3339()
                ],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// The message `file` was written from, while its receipt has not answered it.
    pub fn inbox_thread(&self, file: &str) -> Result<Option<Thread>, StoreError> {
        self.conn
            .query_row(
                "SELECT message, sender, subject, refs, refused FROM inbox_files
                 WHERE file = ?1 AND answered = 0",
                [file],
                |r| {
                    Ok(Thread {
                        message: r.get(0)?,
                        sender: r.get(1)?,
                        subject: r.get(2)?,
                        refs: r.get(3)?,
                        refused: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    /// The receipt answering `file`'s message is queued.
    pub fn inbox_answered(&self, file: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE inbox_files SET answered = 1 WHERE file = ?1",
                [file],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, e))
    }

    /// Files written from mail whose receipt has not gone yet: (file, sender, written_at).
    pub fn inbox_waiting(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.rows(
            "SELECT file, sender, written_at FROM inbox_files WHERE answered = 0 ORDER BY written_at",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The latest message whose files are among `files` (names in `posts/`): the proof of an
    /// issue made of them answers it.
    pub fn inbox_thread_of_any(&self, files: &[String]) -> Result<Option<Thread>, StoreError> {
        let mut best: Option<(String, Thread)> = None;
        for f in files {
            let row = self
                .conn
                .query_row(
                    "SELECT written_at, message, sender, subject, refs FROM inbox_files WHERE file = ?1",
                    [f],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            Thread {
                                message: r.get(1)?,
                                sender: r.get(2)?,
                                subject: r.get(3)?,
                                refs: r.get(4)?,
                                refused: String::new(),
                            },
                        ))
                    },
                )
                .optional()
                .map_err(|e| sql(&self.path, e))?;
            if let Some((at, t)) = row {
                if best.as_ref().is_none_or(|(b, _)| at > *b) {
                    best = Some((at, t));
                }
            }
        }
        Ok(best.map(|(_, t)| t))
    }
}

/// A row of `message, read_at, sender, subject, outcome, detail`.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxMessage> {
    Ok(InboxMessage {
        message: r.get(0)?,
        read_at: r.get(1)?,
        sender: r.get(2)?,
        subject: r.get(3)?,
        outcome: r.get(4)?,
        detail: r.get(5)?,
    })
}
