//! Post by email: the editors' inbox.

pub mod auth;
