//! The one TLS crypto provider of every connection tayori opens: *ring*, under rustls
//! (RFC 8446, TLS 1.3; RFC 5246, TLS 1.2) — SMTP through lettre, IMAP and POP3 in
//! [`crate::mailbox`], HTTPS through reqwest (cross-posts, the editors' webhooks) — and the
//! RSA under DKIM (mail-auth). ring builds in a fraction of aws-lc's time, which the first
//! `cargo run --release` of a new office pays.

use std::sync::{Arc, Once};

use tokio_rustls::rustls::crypto::{ring, CryptoProvider};

/// Installs ring as the process's default provider, once; reqwest (built without a provider
/// of its own) and lettre take the default. Safe to call from anywhere, any number of times.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only if a default is already installed, and ring is the only one compiled in.
        let _ = ring::default_provider().install_default();
    });
}

/// The provider, for a rustls configuration built by hand.
pub fn provider() -> Arc<CryptoProvider> {
    install();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(ring::default_provider()))
}

/// A builder for an HTTP client on our provider (a plain `reqwest::Client::builder()` would
/// find no provider and panic when built).
pub fn http() -> reqwest::ClientBuilder {
    install();
    reqwest::Client::builder()
}
