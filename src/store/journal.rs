//! `issues.log`: an append-only record, outside SQLite and outside `state/`, of every issue
//! started and finished. A backup of `state/` restored after mail went out holds posts that
//! look unsent; checked against this record, such a store is refused instead of mailing
//! everyone again.
//!
//! One line per event, tab-separated: `started|done|reopened`, issue number, creation time (RFC 3339),
//! the issue's post slugs (space-separated), subject. Each line is written with `O_APPEND` and
//! synced before the issue's first message leaves.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{IssueRecord, Store, StoreError};

/// The journal's file name in the newsletter folder.
pub const FILE_NAME: &str = "issues.log";

/// An issue as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journaled {
    pub id: i64,
    pub created_at: String,
    pub slugs: Vec<String>,
    pub subject: String,
    pub done: bool,
}

/// The journal of a newsletter folder.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

/// Why the journal refuses the store, or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error(
        "the state store is older than {journal}: issue {id} 「{subject}」 (started {at}) {what} — was state/ restored from a backup? Sending now would mail it again, so nothing was sent. Restore the newest state/, or remove issue {id}'s lines from {journal} if it really must go out again"
    )]
    Behind {
        journal: String,
        id: i64,
        subject: String,
        at: String,
        what: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Journal {
    /// The journal of the newsletter folder `root`.
    pub fn of(root: &Path) -> Journal {
        Journal {
            path: root.join(FILE_NAME),
        }
    }

    /// Every issue recorded, by number; an unreadable line is skipped.
    pub fn read(&self) -> Result<BTreeMap<i64, Journaled>, JournalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(JournalError::Io(self.path.clone(), e)),
        };
        let mut issues = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            let (Some(event), Some(Ok(id))) = (f.first(), f.get(1).map(|s| s.parse::<i64>()))
            else {
                continue;
            };
            let entry = issues.entry(id).or_insert_with(|| Journaled {
                id,
                created_at: f.get(2).unwrap_or(&"").to_string(),
                slugs: f
                    .get(3)
                    .unwrap_or(&"")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                subject: f.get(4).unwrap_or(&"").to_string(),
                done: false,
            });
            match *event {
                "done" => entry.done = true,
                "reopened" => entry.done = false,
                _ => {}
            }
        }
        Ok(issues)
    }

    /// The number the next issue must have at least: after every issue ever started here,
    /// even when the store has been replaced.
    pub fn next_id(&self) -> Result<i64, JournalError> {
        Ok(self.read()?.keys().next_back().map_or(1, |id| id + 1))
    }

    /// Refuses a store that is behind the journal: it still waits to send posts of an issue
    /// that went out, or it resumes an issue the journal saw finish or never saw start.
    pub fn check(&self, store: &Store) -> Result<(), JournalError> {
        let journal = self.read()?;
        let behind = |j: &Journaled, what| JournalError::Behind {
            journal: self.path.display().to_string(),
            id: j.id,
            subject: j.subject.clone(),
            at: j.created_at.clone(),
            what,
        };
        for j in journal.values() {
            for slug in &j.slugs {
                if store
                    .post(slug)?
                    .is_some_and(|p| p.announced == "pending" && !p.deleted)
                {
                    return Err(behind(
                        j,
                        "went out, but the store still has its posts waiting",
                    ));
                }
            }
            if let Some(issue) = store.issue(j.id)? {
                if issue.created_at.to_rfc3339() != j.created_at {
                    return Err(behind(
                        j,
                        "is not the issue the store has under that number",
                    ));
                }
                if j.done && issue.state == "sending" {
                    return Err(behind(j, "was finished, but the store would resume it"));
                }
            }
        }
        Ok(())
    }

    /// Records that `issue` started; synced before its first message goes out.
    pub fn started(&self, issue: &IssueRecord, slugs: &[String]) -> Result<(), JournalError> {
        self.append("started", issue, slugs)
    }

    /// Records that `issue` was reopened (`send --retry-failed`).
    pub fn reopened(&self, issue: &IssueRecord) -> Result<(), JournalError> {
        self.append("reopened", issue, &[])
    }

    /// Records that `issue` is done.
    pub fn done(&self, issue: &IssueRecord) -> Result<(), JournalError> {
        self.append("done", issue, &[])
    }

    fn append(
        &self,
        event: &str,
        issue: &IssueRecord,
        slugs: &[String],
    ) -> Result<(), JournalError> {
        let line = format!(
            "{event}\t{}\t{}\t{}\t{}\n",
            issue.id,
            issue.created_at.to_rfc3339(),
            slugs.join(" "),
            issue.subject.replace(['\t', '\n', '\r'], " ")
        );
        let io = |e| JournalError::Io(self.path.clone(), e);
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&self.path).map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}
