//! DKIM signatures (RFC 6376) on outgoing messages: `rsa-sha256`, `relaxed/relaxed`, over the
//! headers that matter for a newsletter — including the RFC 8058 pair, which mailbox providers
//! require to be signed for one-click unsubscribe (lettre's default header list leaves them out).
//!
//! lettre signs only its own `Message` values (we send pre-built bytes), so the signer is
//! `mail-auth`'s (the verifier of the editors' inbox), with ring (our one crypto provider)
//! underneath; a test checks the signatures with `dkimpy`. A header of the list that a message
//! lacks is named in `h=` all the same (RFC 6376 §8.15), so nobody can add it on the way.

use std::path::Path;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::config::Dkim;

/// The headers signed (`h=`); one that a message lacks is named too, so it cannot be added.
pub const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A ready signer.
pub struct Signer {
    signer: DkimSigner<RsaKey<Sha256>, Done>,
    public_key: Vec<u8>,
    domain: String,
    selector: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(d={}, s={})", self.domain, self.selector)
    }
}

/// Why the DKIM key could not be used. Permanent: the key file or configuration must change.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DKIM key {}: {reason}", path.display())]
    Key {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("DKIM signing: {0}")]
    Sign(String),
}

impl Signer {
    /// Loads the PEM RSA private key (PKCS #1 or #8) named in the configuration, relative to
    /// `root`.
    pub fn load(root: &Path, dkim: &Dkim) -> Result<Signer, DkimError> {
        let path = root.join(&dkim.private_key_file);
        let bad = |reason: String| DkimError::Key {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(&path).map_err(|source| DkimError::Read {
            path: path.clone(),
            source,
        })?;
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| bad(format!("not a PEM private key: {e}")))?;
        if !matches!(der, PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_)) {
            return Err(bad("not an RSA key".into()));
        }
        let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| bad(e.to_string()))?;
        let public_key = key.public_key();
        let signer = DkimSigner::from_key(key)
            .domain(dkim.domain.clone())
            .selector(dkim.selector.clone())
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Signer {
            signer,
            public_key,
            domain: dkim.domain.clone(),
            selector: dkim.selector.clone(),
        })
    }

    /// Our public key, DER (PKCS #1 `RSAPublicKey`): what `<selector>._domainkey` must carry.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key.clone()
    }

    /// The `DKIM-Signature:` header field (ending in CRLF) for a complete CRLF message, signed
    /// now (`t=`).
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let signature = self
            .signer
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }
}
