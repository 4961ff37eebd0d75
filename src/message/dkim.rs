//! DKIM signatures (RFC 6376) on outgoing messages: `rsa-sha256`, `relaxed/relaxed`, over the
//! headers that matter for a newsletter — including the RFC 8058 pair, which mailbox providers
//! require to be signed for one-click unsubscribe (lettre's default header list leaves them out).
//!
//! Why not a crate: lettre signs only its own `Message` values (we send pre-built bytes), and
//! `mail-auth` needs a newer compiler than this project's or a DNS resolver we do not use. The
//! cryptography is aws-lc-rs (already our TLS provider); this module only canonicalises
//! (§3.4.2, §3.4.4) and assembles the header (§3.5), and a test checks it with `dkimpy`.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};

use crate::config::Dkim;

/// The headers signed (`h=`), when present.
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
    key: RsaKeyPair,
    domain: String,
    selector: String,
    rng: SystemRandom,
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
        let key = match &der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(bad("not an RSA key".into())),
        }
        .map_err(|e| bad(e.to_string()))?;
        Ok(Signer {
            key,
            domain: dkim.domain.clone(),
            selector: dkim.selector.clone(),
            rng: SystemRandom::new(),
        })
    }

    /// Our public key, DER (PKCS #1 `RSAPublicKey`): what `<selector>._domainkey` must carry.
    pub fn public_key_der(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }

    /// The `DKIM-Signature:` header line (ending in CRLF) for a complete CRLF message.
    pub fn sign(&self, message: &[u8], now: u64) -> Result<String, DkimError> {
        let split = find(message, b"\r\n\r\n")
            .ok_or_else(|| DkimError::Sign("message has no body".into()))?;
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let headers = parse_headers(head);
        let mut names = Vec::new();
        let mut hashed = Vec::new();
        for want in SIGNED_HEADERS {
            if let Some((name, value)) = headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(want))
            {
                names.push(want.to_ascii_lowercase());
                hashed.extend_from_slice(&relaxed_header(name, value));
                hashed.extend_from_slice(b"\r\n");
            }
        }
        let bh = B64.encode(Sha256::digest(relaxed_body(body)));
        let value = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={}; t={now}; h={}; bh={bh}; b=",
            self.domain,
            self.selector,
            names.join(":")
        );
        hashed.extend_from_slice(&relaxed_header("DKIM-Signature", value.as_bytes()));
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, &hashed, &mut sig)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(format!("DKIM-Signature: {value}{}\r\n", B64.encode(sig)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header fields as (name, raw value with folding), in order.
fn parse_headers(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(b"\r\n");
                v.extend_from_slice(line);
            }
        } else if let Some(colon) = line.iter().position(|b| *b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            out.push((name, line[colon + 1..].to_vec()));
        }
    }
    out
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6376 §3.4.2: lower-case name, unfolded value, runs of WSP as one SP, trimmed.
fn relaxed_header(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = name.trim().to_ascii_lowercase().into_bytes();
    out.push(b':');
    let mut space = false;
    for &b in value.iter().filter(|b| **b != b'\r' && **b != b'\n') {
        if is_wsp(b) {
            space = true;
        } else {
            if space && out.last() != Some(&b':') {
                out.push(b' ');
            }
            space = false;
            out.push(b);
        }
    }
    out
}

/// RFC 6376 §3.4.4: WSP runs as one SP, no WSP at line ends, no empty lines at the end.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut pending_blank = 0;
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, raw) in lines.into_iter().enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if i == last && line.is_empty() {
            break; // the split after a final CRLF
        }
        let mut canon = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if is_wsp(b) {
                space = true;
            } else {
                if space {
                    canon.push(b' ');
                }
                space = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            pending_blank += 1;
            continue;
        }
        for _ in 0..pending_blank {
            out.extend_from_slice(b"\r\n");
        }
        pending_blank = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_header_follows_rfc_6376_example() {
        // RFC 6376 §3.4.5, example 2.
        assert_eq!(relaxed_header("A", b" X\r\n"), b"a:X");
        assert_eq!(relaxed_header("B ", b" Y\t\r\n\tZ  \r\n"), b"b:Y Z");
    }

    #[test]
    fn relaxed_body_follows_rfc_6376_example() {
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
    }
}
