//! Reading the bounce mailbox (a Maildir: `new/` and `cur/`) and acting on each report once.
//!
//! A report is matched to a delivery by its VERP tag (the address it was sent back to), else by
//! the recipient it names. What it says is recorded and suppresses what must be suppressed
//! ([`crate::store::Store::record_report`]). A matched report is marked seen (moved to `cur/`
//! with the `S` flag, the Maildir convention); a report that cannot be read, or matches no
//! subscriber, stays where it is and is listed by `tayori status`. Each report is recorded by
//! its Message-ID (else file name), so a restart never counts one twice.

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

/// Reads every report not yet read in the Maildir at `dir`.
pub fn read_maildir(dir: &Path, store: &mut Store, key: &Key) -> Result<Read, MailboxError> {
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
            read_one(dir, &file, &bytes, store, key, &mut read)?;
        }
    }
    Ok(read)
}

/// The Maildir `S` (seen) flag in a file name (`…:2,S`).
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

fn read_one(
    dir: &Path,
    file: &Path,
    bytes: &[u8],
    store: &mut Store,
    key: &Key,
    read: &mut Read,
) -> Result<(), MailboxError> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let report = parse(bytes);
    let id = report
        .as_ref()
        .and_then(|r| r.message_id.clone())
        .unwrap_or_else(|| format!("file:{}", name.split(':').next().unwrap_or(&name)));
    if store.report_seen(&id)? {
        return Ok(());
    }
    read.reports += 1;
    let now = Utc::now();
    let Some(report) = report else {
        store.record_report(&id, "kept: not a message", &[], now)?;
        read.kept += 1;
        return Ok(());
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
        return Ok(());
    }
    read.suppressed
        .extend(store.record_report(&id, "matched", &records, now)?);
    read.matched += 1;
    // Seen: into cur/ with the S flag, so that mail clients and we agree it was read.
    let base = name.split(":2,").next().unwrap_or(&name);
    let target = dir.join("cur").join(format!("{base}:2,S"));
    let _ = std::fs::rename(file, target);
    Ok(())
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
