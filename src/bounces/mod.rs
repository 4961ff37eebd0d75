//! Bounce reports: what a report says (parsed with `mail-parser`: RFC 3464 delivery status
//! notifications, RFC 6533 `message/global-delivery-status`, RFC 5965 complaints, and the
//! non-standard reports real servers still write), and what tayori does about each recipient
//! in it — decided by *why* it bounced, not by the status class alone (DESIGN.md, "Bounces").
//!
//! [`mailbox`] reads a Maildir and acts on each report once; a 5xx at RCPT goes through the
//! same [`classify`].

mod classify;
pub mod mailbox;
mod plain;
pub mod remote;
mod report;
mod words;

pub use classify::{
    classify, smtp_refusal, stage_in, verdict, Cause, Said, Stage, SOFT_LIMIT, SOFT_WINDOW,
};
pub use report::{cause_for, enhanced_status, failure_for, parse, Failure, Report};
