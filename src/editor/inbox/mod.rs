//! Post by email: the editors' inbox.

pub(crate) mod auth;
