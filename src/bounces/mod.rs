//! Bounce reports: what a report says (parsed with `mail-parser`: RFC 3464 delivery status
//! notifications, RFC 6533 `message/global-delivery-status`, RFC 5965 complaints, and the
//! non-standard reports real servers still write), and what tayori does about each recipient
//! in it — decided by *why* it bounced, not by the status class alone (DESIGN.md, "Bounces").
//!
//! This is the reading and deciding half of bounce handling; reading a mailbox and acting on
//! the decisions come on top of it.

mod classify;
mod report;

pub use classify::{classify, Cause};
pub use report::{parse, Failure, Report};
