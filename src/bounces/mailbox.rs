//! Reading the bounce mailbox — a Maildir (`new/` and `cur/`), or IMAP or POP3 on a server
//! ([`super::remote`]) — and acting on each report once.
//!
//! A report is matched to a delivery by its VERP tag (the address it was sent back to), else by
//! the recipient it names. What it says is recorded and suppresses what must be suppressed
//! ([`crate::store::Store::record_report`]). A matched report is marked seen (Maildir: moved to
//! `cur/` with the `S` flag; IMAP: `\Seen`) or deleted (`bounces.processed: delete`); a report
//! that cannot be read, or matches no subscriber, stays where it is and is listed by
//! `tayori status`. Each report is recorded by its Message-ID (else its content hash), so a
//! restart — or a POP3 mailbox that keeps what it served — never counts one twice.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{parse, Cause};
use crate::store::{BounceRecord, Store, StoreError};
use crate::unsubscribe::Key;

/// What one reading of the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Read {
    pub reports: usize,
    pub matched: usize,
    pub kept: usize,
    pub suppressed: Vec<String>,
}

/// Why the mailbox could not be read (the reports stay; nothing is decided).
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("bounce mailbox {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bounce mailbox {mailbox}: {message}")]
    Server { mailbox: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Cause {
    /// The cause as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::AddressGone => "address gone",
            Cause::Complaint => "complaint",
            Cause::ReaderSide => "reader side",
            Cause::SenderSide => "sender side",
            Cause::Other => "other",
            Cause::NotABounce => "not a bounce",
        }
    }
}

/// Reads every report not yet read in the Maildir at `dir`. A report acted on is marked seen
/// (into `cur/` with the `S` flag), or removed with `delete`.
pub fn read_maildir(
    dir: &Path,
    store: &mut Store,
    key: &Key,
    delete: bool,
) -> Result<Read, MailboxError> {
    let mut read = Read::default();
    for sub in ["new", "cur"] {
        let folder = dir.join(sub);
        let io = |source| MailboxError::Io {
            path: folder.clone(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || seen(name) {
                continue;
            }
            let bytes = std::fs::read(&file).map_err(|source| MailboxError::Io {
                path: file.clone(),
                source,
            })?;
            if !process(&bytes, store, key, &mut read)? {
                continue;
            }
            // Seen: into cur/ with the S flag, so that mail clients and we agree it was read.
            let base = name.split(":2,").next().unwrap_or(name);
            let _ = if delete {
                std::fs::remove_file(&file)
            } else {
                std::fs::rename(&file, dir.join("cur").join(format!("{base}:2,S")))
            };
        }
    }
    Ok(read)
}

/// Reads the reports not yet read in a mailbox on a server (see [`super::remote`]).
pub async fn read_remote(
    remote: &super::remote::Remote,
    store: &mut Store,
    key: &Key,
    delete: bool,
) -> Result<Read, MailboxError> {
    let fail = |message: String| MailboxError::Server {
        mailbox: remote.name(),
        message,
    };
    let mut session = super::remote::Session::open(remote).await.map_err(fail)?;
    let fetched = session.fetch().await.map_err(fail)?;
    let mut read = Read::default();
    let mut acted_on = Vec::new();
    for f in &fetched {
        if process(&f.bytes, store, key, &mut read)? {
            acted_on.push(f.id);
        }
    }
    session.mark(&acted_on, delete).await.map_err(fail)?;
    session.close().await.map_err(fail)?;
    Ok(read)
}

/// The Maildir `S` (seen) flag in a file name (`…:2,S`).
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

/// Acts on one report once (by its Message-ID, else its content hash); returns whether it was
/// acted on — now or at an earlier reading — and so may be marked read.
fn process(
    bytes: &[u8],
    store: &mut Store,
    key: &Key,
    read: &mut Read,
) -> Result<bool, MailboxError> {
    let report = parse(bytes);
    let id = report
        .as_ref()
        .and_then(|r| r.message_id.clone())
        .unwrap_or_else(|| {
            use sha2::Digest;
            format!(
                "sha256:{}",
                crate::content::hex(&sha2::Sha256::digest(bytes))
            )
        });
    if let Some(outcome) = store.report_outcome(&id)? {
        return Ok(outcome == "matched");
    }
    read.reports += 1;
    let now = Utc::now();
    let Some(report) = report else {
        store.record_report(&id, "kept: not a message", &[], now)?;
        read.kept += 1;
        return Ok(false);
    };
    let mut records = Vec::new();
    for f in &report.failures {
        let cause = if report.complaint.is_some() {
            Cause::Complaint
        } else if report.auto_reply {
            Cause::NotABounce
        } else {
            f.cause()
        };
        if cause == Cause::NotABounce {
            continue;
        }
        let Some((address, issue)) = delivery(&report, &f.address, store, key)? else {
            continue;
        };
        records.push(BounceRecord {
            address,
            issue,
            cause: cause.as_str().to_string(),
            status: f.status.clone(),
            diagnostic: f.diagnostic.lines().take(3).collect::<Vec<_>>().join(" "),
        });
    }
    if records.is_empty() {
        let why = if report.auto_reply || report.failures.is_empty() {
            "kept: not a bounce we could read"
        } else {
            "kept: matches no subscriber"
        };
        store.record_report(&id, why, &[], now)?;
        read.kept += 1;
        return Ok(false);
    }
    read.suppressed
        .extend(store.record_report(&id, "matched", &records, now)?);
    read.matched += 1;
    Ok(true)
}

/// The delivery a failure is about: by the report's VERP tag, else by the address it names.
fn delivery(
    report: &super::Report,
    named: &str,
    store: &Store,
    key: &Key,
) -> Result<Option<(String, Option<i64>)>, StoreError> {
    if let Some(tag) = report.verp_tag() {
        if let Some(issue) = tag.split_once('x').and_then(|(i, _)| i.parse::<i64>().ok()) {
            if let Some(a) = store
                .addresses_of(issue)?
                .into_iter()
                .find(|a| key.verp_matches(tag, a))
            {
                return Ok(Some((a, Some(issue))));
            }
        }
    }
    let address = crate::subscribers::key(named);
    let issues = store.issues_to(&address)?;
    Ok((!issues.is_empty()).then(|| (address, issues.first().copied())))
}
