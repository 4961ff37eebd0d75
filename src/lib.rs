//! tayori (便り): a crash-safe newsletter daemon for a small law office.
//!
//! The pipeline, one module per stage: [`config`] → [`content`] (ingest) → [`publish`] →
//! [`render`] (email, feeds, archive) → [`message`] (MIME) → delivery, with durable state in
//! [`store`]; [`subscribers`] reads the lists, [`schedule`] decides when issues go out and
//! [`cli`] ties the commands together. `docs/` describes the whole; `docs/architecture.md` maps these modules.

pub mod backoff;
pub mod bounces;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod content;
pub mod crosspost;
pub mod daemon;
pub mod deliver;
pub mod doctor;
pub mod editor;
pub mod files;
pub mod lock;
pub mod message;
pub mod problem;
pub mod publish;
pub mod readers;
pub mod render;
pub mod schedule;
pub mod search;
pub mod server;
pub mod signup;
pub mod store;
pub mod subscribers;
pub mod unsubscribe;
pub mod watch;
