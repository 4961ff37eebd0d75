//! Bounce reports: what a report says (parsed with `mail-parser`: RFC 3464 delivery status
//! notifications, RFC 6533 `message/global-delivery-status`, RFC 5965 complaints, Amazon SES
//! notifications, and the prose reports real servers still write), and the one verdict on each
//! recipient in it — decided by *why* it bounced, not by the status class alone.
//!
//! [`classify`] decides (for a report and for a 5xx at RCPT or DATA alike); [`mailbox`] reads
//! the bounce mailbox (through [`crate::mailbox`]), matches each report to a delivery by its VERP tag and has the store record and apply
//! the verdict.

mod classify;
mod plain;
mod report;
mod words;

pub use classify::{
    classify, smtp_refusal, stage_in, suppression, verdict, Cause, Said, Stage, SOFT_LIMIT,
    SOFT_WINDOW,
};
pub use report::{cause_for, enhanced_status, failure_for, parse, Failure, Report};
