//! tayori (便り): a crash-safe newsletter daemon for a small law office.
//!
//! The pipeline, one module per stage: [`config`] → [`content`] (ingest) → [`publish`] →
//! [`render`] (email, feeds, archive) → [`message`] (MIME) → delivery, with durable state in
//! [`store`]; [`subscribers`] reads the lists, the schedule (in [`config`]) and `calendar`
//! decide when issues go out, and [`cli`] ties the commands together. `docs/` describes the
//! whole; `docs/architecture.md` maps these modules.

pub(crate) mod backoff;
pub mod bounces;
pub(crate) mod calendar;
pub mod cli;
pub mod config;
pub mod content;
pub mod crosspost;
pub(crate) mod daemon;
pub(crate) mod deliver;
pub(crate) mod doctor;
pub(crate) mod editor;
pub(crate) mod files;
pub(crate) mod lock;
pub mod mailbox;
pub mod media;
pub mod message;
pub(crate) mod problem;
pub mod publish;
pub(crate) mod readers;
pub mod render;
pub(crate) mod search;
pub mod server;
pub(crate) mod signature;
pub mod store;
pub(crate) mod subscribers;
pub(crate) mod text;
pub mod tls;
pub mod unsubscribe;
pub mod watch;

/// Who may post by email (the editors' inbox), for the tests.
pub use editor::inbox::auth as inbox_auth;
