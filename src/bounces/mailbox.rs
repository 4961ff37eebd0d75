//! Reading the bounce mailbox — a Maildir (`new/` and `cur/`), or IMAP or POP3 on a server
//! ([`super::remote`]) — and acting on each report once.
//!
//! With `bounces.address` set, a report acts only through the VERP tag of a delivery we made
//! (HMAC of the address with the folder's secret, so nobody can make one up): found in the
//! address it came back to, or in the returned original's `Return-Path`. It acts on that
//! delivery's address only, with the cause the report gives for that address. A report without
//! a valid tag — anyone can write to the public bounce address — is kept and shown, never acted
//! on. Without `bounces.address` (no VERP), a report is matched by the recipients it names.
//!
//! What a report says is recorded and applied by the store
//! ([`crate::store::Store::record_report`]). A matched report is marked seen (Maildir: moved to
//! `cur/` with the `S` flag; IMAP: `\Seen`) or deleted (`bounces.processed: delete`); a report
//! that cannot be read, or matches no delivery, stays where it is and is listed by
//! `tayori status`. Each report is recorded by its Message-ID (else its content hash) and, before
//! it is parsed, by its file name (Maildir) or content hash (IMAP, POP3): a report is parsed once,
//! and a restart never counts one twice. A report bigger than [`MAX_REPORT_BYTES`] is kept and
//! shown, never parsed.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{cause_for, failure_for, parse, Cause, Report};
use crate::store::{BounceRecord, Store, StoreError};
use crate::unsubscribe::Key;

/// Reports bigger than this are kept and shown, never parsed (a real one is a few KiB; the cap
/// bounds the memory and time one report can take).
pub const MAX_REPORT_BYTES: u64 = 10 * 1024 * 1024;

/// The most addresses one report is matched by when there is no VERP tag: a report naming more
/// is one finding, not thousands.
const MAX_ADDRESSES: usize = 100;

/// How reports are read and whom they may act on.
pub struct Reader<'a> {
    /// The folder's secret: it makes and checks the VERP tags.
    pub key: &'a Key,
    /// `bounces.address` is set: only a valid VERP tag can match a report to a delivery.
    pub tagged_only: bool,
    /// `bounces.processed: delete`: a report acted on is deleted rather than marked seen.
    pub delete: bool,
}

/// What one reading of the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Read {
    /// Reports new to this reading (read for the first time, or too big to read).
    pub reports: usize,
    /// Reports parsed by this reading.
    pub parsed: usize,
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

/// Reads every report not yet read in the Maildir at `dir`. A report acted on is marked seen
/// (into `cur/` with the `S` flag), or removed with `delete`.
pub fn read_maildir(dir: &Path, store: &mut Store, reader: &Reader) -> Result<Read, MailboxError> {
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
            if !maildir_file(&file, store, reader, &mut read)? {
                continue;
            }
            // Seen: into cur/ with the S flag, so that mail clients and we agree it was read.
            let base = name.split(":2,").next().unwrap_or(name);
            let marked = if reader.delete {
                std::fs::remove_file(&file)
            } else {
                std::fs::rename(&file, dir.join("cur").join(format!("{base}:2,S")))
            };
            // The store already knows the report: left in new/, it is not acted on twice.
            if let Err(e) = marked {
                tracing::warn!(file = %file.display(), "bounce report not marked seen: {e}");
            }
        }
    }
    Ok(read)
}

/// One Maildir file: known by its name before it is read, too big to read, or read once.
/// Returns whether it was acted on (and so may be marked seen).
fn maildir_file(
    file: &Path,
    store: &mut Store,
    reader: &Reader,
    read: &mut Read,
) -> Result<bool, MailboxError> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let seen_as = format!("file:{}", name.split(":2,").next().unwrap_or(name));
    if let Some(outcome) = store.report_outcome(&seen_as)? {
        return Ok(outcome == "matched");
    }
    let io = |source| MailboxError::Io {
        path: file.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size > MAX_REPORT_BYTES {
        return keep_too_big(&seen_as, size, store, read);
    }
    // A regular file only, never more than the cap (it may have grown since the stat).
    let bytes = crate::files::read_regular(file, MAX_REPORT_BYTES, crate::files::Links::Follow)
        .map_err(|e| io(e.into()))?;
    process(&bytes, &seen_as, store, reader, read)
}

fn keep_too_big(
    id: &str,
    size: u64,
    store: &mut Store,
    read: &mut Read,
) -> Result<bool, MailboxError> {
    let why = format!(
        "kept: too big to read ({} MiB; the limit is {} MiB)",
        size.div_ceil(1024 * 1024),
        MAX_REPORT_BYTES / (1024 * 1024)
    );
    tracing::warn!(report = id, "bounce report {why}");
    store.record_report(&[id], &why, &[], Utc::now())?;
    read.reports += 1;
    read.kept += 1;
    Ok(false)
}

/// Reads the reports not yet read in a mailbox on a server (see [`super::remote`]).
pub async fn read_remote(
    remote: &super::remote::Remote,
    store: &mut Store,
    reader: &Reader<'_>,
) -> Result<Read, MailboxError> {
    let fail = |message: String| MailboxError::Server {
        mailbox: remote.name(),
        message,
    };
    let mut session = super::remote::Session::open(remote).await.map_err(fail)?;
    let fetched = session.fetch(MAX_REPORT_BYTES).await.map_err(fail)?;
    let mut read = Read::default();
    let mut acted_on = Vec::new();
    for f in &fetched {
        // Known before it is parsed — by its content, or (too big to download) by its place
        // on the server: a kept report is not read again.
        let too_big = f.size > MAX_REPORT_BYTES;
        let seen_as = if too_big {
            format!("{}/{}#{}", remote.name(), remote.folder, f.id)
        } else {
            content_id(&f.bytes)
        };
        let acted = match store.report_outcome(&seen_as)? {
            Some(outcome) => outcome == "matched",
            None if too_big => keep_too_big(&seen_as, f.size, store, &mut read)?,
            None => process(&f.bytes, &seen_as, store, reader, &mut read)?,
        };
        if acted {
            acted_on.push(f.id);
        }
    }
    session.mark(&acted_on, reader.delete).await.map_err(fail)?;
    session.close().await.map_err(fail)?;
    Ok(read)
}

/// The Maildir `S` (seen) flag in a file name (`…:2,S`).
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

/// A report's id by its content.
fn content_id(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        crate::content::hex(&sha2::Sha256::digest(bytes))
    )
}

/// Acts on one report once (by its Message-ID, else its content hash; `seen_as` is what it
/// is known by before parsing); returns whether it was acted on — now or at an earlier
/// reading — and so may be marked read.
fn process(
    bytes: &[u8],
    seen_as: &str,
    store: &mut Store,
    reader: &Reader,
    read: &mut Read,
) -> Result<bool, MailboxError> {
    read.parsed += 1;
    let report = parse(bytes);
    let id = report
        .as_ref()
        .and_then(|r| r.message_id.clone())
        .unwrap_or_else(|| content_id(bytes));
    let ids = [id.as_str(), seen_as];
    if let Some(outcome) = store.report_outcome(&id)? {
        // The same report under another name: remember the name too.
        store.record_report(&ids, &outcome, &[], Utc::now())?;
        return Ok(outcome == "matched");
    }
    read.reports += 1;
    let now = Utc::now();
    let Some(report) = report else {
        store.record_report(&ids, "kept: not a message", &[], now)?;
        read.kept += 1;
        return Ok(false);
    };
    let (records, why) = decide(&report, store, reader)?;
    if records.is_empty() {
        store.record_report(&ids, why, &[], now)?;
        read.kept += 1;
        return Ok(false);
    }
    read.suppressed
        .extend(store.record_report(&ids, "matched", &records, now)?);
    read.matched += 1;
    Ok(true)
}

/// What a report says about the deliveries it is about; when nothing, why it is kept.
fn decide(
    report: &Report,
    store: &Store,
    reader: &Reader,
) -> Result<(Vec<BounceRecord>, &'static str), StoreError> {
    if report.failures.is_empty() && report.complaint.is_none() || report.auto_reply {
        return Ok((Vec::new(), "kept: not a bounce we could read"));
    }
    // A handful of candidates: each costs a MAC per address of its issue.
    for tag in report.verp_tags().take(8) {
        if let Some((address, issue)) = delivery_of_tag(tag, store, reader.key)? {
            if names_another_subscriber(report, &address, store)? {
                // A forward names an address we never wrote to; a report that names another
                // of our readers under this tag is someone's mistake or someone's forgery.
                let why = "kept: names another subscriber than the delivery it came back for";
                return Ok((Vec::new(), why));
            }
            let record = record(report, &address, Some(issue));
            let why = "kept: says nothing about the delivery it came back for";
            return Ok((record.into_iter().collect(), why));
        }
    }
    if reader.tagged_only {
        return Ok((Vec::new(), "kept: no valid VERP tag, never acted on"));
    }
    let mut named: Vec<&str> = report.failures.iter().map(|f| f.address.as_str()).collect();
    named.sort_unstable();
    named.dedup();
    let mut records = Vec::new();
    for named in named.into_iter().take(MAX_ADDRESSES) {
        let address = crate::subscribers::key(named);
        if let Some(issue) = store.issues_to(&address)?.first().copied() {
            records.extend(record(report, &address, Some(issue)));
        }
    }
    Ok((records, "kept: matches no subscriber"))
}

/// Whether the report names none of `address` but another address we made deliveries to.
fn names_another_subscriber(
    report: &Report,
    address: &str,
    store: &Store,
) -> Result<bool, StoreError> {
    let named = |a: &str| crate::subscribers::key(a) == address;
    if report.failures.is_empty() || report.failures.iter().any(|f| named(&f.address)) {
        return Ok(false);
    }
    for f in report.failures.iter().take(MAX_ADDRESSES) {
        if !store
            .issues_to(&crate::subscribers::key(&f.address))?
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The record of what `report` says about the delivery to `address`, if it says anything.
fn record(report: &Report, address: &str, issue: Option<i64>) -> Option<BounceRecord> {
    let cause = cause_for(report, address).filter(|c| *c != Cause::NotABounce)?;
    let failure = failure_for(report, address);
    Some(BounceRecord {
        address: address.to_string(),
        issue,
        cause,
        status: failure.map(|f| f.status.clone()).unwrap_or_default(),
        diagnostic: failure
            .map(|f| f.diagnostic.lines().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    })
}

/// The delivery a VERP tag names (`<issue>x<MAC>`): the address of that issue whose MAC it is.
fn delivery_of_tag(
    tag: &str,
    store: &Store,
    key: &Key,
) -> Result<Option<(String, i64)>, StoreError> {
    let Some(issue) = tag.split_once('x').and_then(|(i, _)| i.parse::<i64>().ok()) else {
        return Ok(None);
    };
    Ok(store
        .addresses_of(issue)?
        .into_iter()
        .find(|a| key.verp_matches(tag, a))
        .map(|a| (a, issue)))
}
