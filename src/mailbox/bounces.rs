//! Reading the bounce mailbox — a Maildir, or IMAP or POP3 on a server, read by
//! [`super`] — and acting on each report once. The reports themselves are read by
//! [`crate::bounces`].
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

use std::path::Path;

use chrono::Utc;

use super::{content_id, Batch, MailboxUrl};
use crate::bounces::{cause_for, failure_for, parse, Cause, Report};
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
    #[error("bounce mailbox {0}")]
    Mailbox(#[from] crate::mailbox::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads every report not yet read in the Maildir at `dir`. A report acted on is marked seen
/// (into `cur/` with the `S` flag), or removed with `delete`.
pub fn read_maildir(dir: &Path, store: &mut Store, reader: &Reader) -> Result<Read, MailboxError> {
    let batch = Batch::maildir(dir, MAX_REPORT_BYTES)?;
    let mut read = Read::default();
    let done = consume(&batch, store, reader, &mut read)?;
    batch.finish_maildir(&done, reader.delete);
    Ok(read)
}

/// Reads the reports not yet read in the mailbox `url` (a Maildir, or IMAP or POP3 with
/// `TAYORI_BOUNCE_PASSWORD`).
pub async fn read(
    url: &MailboxUrl,
    store: &mut Store,
    reader: &Reader<'_>,
) -> Result<Read, MailboxError> {
    let batch = Batch::open(url, PASSWORD, MAX_REPORT_BYTES).await?;
    let mut read = Read::default();
    let done = consume(&batch, store, reader, &mut read)?;
    batch.finish(&done, reader.delete).await?;
    Ok(read)
}

/// The environment variable with the bounce mailbox's password.
pub const PASSWORD: &str = "TAYORI_BOUNCE_PASSWORD";

/// Each report of the batch once: known before it is read (by its file name or content), too
/// big to read, or parsed. Returns the reports acted on (and so to be marked read).
fn consume(
    batch: &Batch,
    store: &mut Store,
    reader: &Reader,
    read: &mut Read,
) -> Result<Vec<usize>, MailboxError> {
    let mut done = Vec::new();
    for (i, m) in batch.messages().iter().enumerate() {
        let acted = match store.report_outcome(&m.seen_as)? {
            Some(outcome) => outcome == "matched",
            None => match batch.read(i)? {
                None => keep_too_big(&m.seen_as, m.size, store, read)?,
                Some(bytes) => process(&bytes, &m.seen_as, store, reader, read)?,
            },
        };
        if acted {
            done.push(i);
        }
    }
    Ok(done)
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
