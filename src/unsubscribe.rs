//! Per-subscriber unsubscribe tokens: `base64url(HMAC-SHA256(key, address))` truncated to 128
//! bits (RFC 2104), an opaque id with nothing of the address inside; the server resolves it
//! through the store ([`crate::store::Store::unsubscribe_address`]). Links sent before carry
//! `base64url(address).base64url(MAC)` ([`Key::address_token`]); they are still accepted,
//! since they sit in inboxes, but no longer made. The key comes from `TAYORI_SECRET`, else from
//! `state/secret`, generated on first use from the operating system's random generator
//! (`getrandom`), with mode 0600. A key shorter than 32 bytes is refused.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept in a token.
const MAC_BYTES: usize = 16;

/// The shortest key accepted, in bytes (HMAC-SHA256's output size).
pub const MIN_KEY_BYTES: usize = 32;

fn too_short(what: &str, n: usize) -> std::io::Error {
    std::io::Error::other(format!(
        "{what} is {n} bytes; the unsubscribe key needs {MIN_KEY_BYTES} or more (e.g. `openssl rand -hex 32`)"
    ))
}

/// The key that signs and checks tokens.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A key from raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Key {
        Key(bytes.into())
    }

    /// `TAYORI_SECRET`, else `state/secret` in `root`; `create` allows generating the file.
    pub fn load(root: &Path, create: bool) -> std::io::Result<Option<Key>> {
        if let Ok(s) = std::env::var("TAYORI_SECRET") {
            if !s.is_empty() {
                if s.len() < MIN_KEY_BYTES {
                    return Err(too_short("TAYORI_SECRET", s.len()));
                }
                return Ok(Some(Key(s.into_bytes())));
            }
        }
        Key::load_file(root, create)
    }

    /// [`Key::load`], generating `state/secret` when there is no key yet.
    pub fn load_or_create(root: &Path) -> std::io::Result<Key> {
        Key::load(root, true)?.ok_or_else(|| std::io::Error::other("no unsubscribe key"))
    }

    /// The key in `state/secret`, generated (mode 0600) when absent and `create` is set.
    fn load_file(root: &Path, create: bool) -> std::io::Result<Option<Key>> {
        let path = root.join("state").join("secret");
        match std::fs::read(&path) {
            Ok(b) if b.len() >= MIN_KEY_BYTES => return Ok(Some(Key(b))),
            Ok(b) if !b.is_empty() => return Err(too_short("state/secret", b.len())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !create {
            return Ok(None);
        }
        crate::files::private_dir(&root.join("state"))?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|_| std::io::Error::other("the system random generator failed"))?;
        let secret = crate::text::hex(&raw);
        // Written whole to a private temporary file, then linked into place: the link fails
        // if another process made the key first, and a reader never sees half a key.
        let state = root.join("state");
        let mut tmp = tempfile::Builder::new()
            .prefix(".secret-")
            .tempfile_in(&state)?;
        {
            use std::io::Write;
            tmp.write_all(secret.as_bytes())?;
            tmp.as_file().sync_all()?;
        }
        match std::fs::hard_link(tmp.path(), &path) {
            Ok(()) => Ok(Some(Key(secret.into_bytes()))),
            // Another process made it first: use theirs, which was whole when it was linked.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let theirs = std::fs::read(&path)?;
                if theirs.len() < MIN_KEY_BYTES {
                    return Err(too_short("state/secret", theirs.len()));
                }
                Ok(Some(Key(theirs)))
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, address: &str) -> Hmac<Sha256> {
        self.mac_for(b"tayori-unsubscribe:", address)
    }

    fn mac_for(&self, purpose: &[u8], data: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.update(data.as_bytes());
        mac
    }

    /// The VERP tag of a delivery (RFC 5321 local-part safe): `<issue>x<16 hex digits of
    /// HMAC(key, address)>`. It names the delivery without showing the address and cannot be
    /// made without the key; it survives restarts because the key does.
    pub fn verp_tag(&self, issue: i64, address: &str) -> String {
        let address = address.trim().to_lowercase();
        let mac = self
            .mac_for(b"tayori-verp:", &address)
            .finalize()
            .into_bytes();
        format!("{issue}x{}", crate::text::hex(&mac[..8]))
    }

    /// The issue and the address-part of a tag made by [`Key::verp_tag`].
    pub fn verp_matches(&self, tag: &str, address: &str) -> bool {
        tag.split_once('x')
            .and_then(|(issue, _)| issue.parse::<i64>().ok())
            .is_some_and(|issue| self.verp_tag(issue, address) == tag)
    }

    /// A stamp of when a sign-up form was shown (`<unix seconds>.<MAC>`), so that the form
    /// posted back tells how long the person had it.
    pub fn form_stamp(&self, now: i64) -> String {
        let tag = self
            .mac_for(b"tayori-form:", &now.to_string())
            .finalize()
            .into_bytes();
        format!("{now}.{}", B64.encode(&tag[..MAC_BYTES]))
    }

    /// Seconds since a genuine [`Key::form_stamp`] was made; `None` for a forged one.
    pub fn form_age(&self, stamp: &str, now: i64) -> Option<i64> {
        let (at, tag) = stamp.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        self.mac_for(b"tayori-form:", at)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(now - at.parse::<i64>().ok()?)
    }

    /// The unsubscribe token of an address (compared lower-cased): 22 characters that cannot
    /// be made without the key and say nothing of the address.
    pub fn token(&self, address: &str) -> String {
        let address = address.trim().to_lowercase();
        let id = self
            .mac_for(b"tayori-unsubscribe-id:", &address)
            .finalize()
            .into_bytes();
        B64.encode(&id[..MAC_BYTES])
    }

    /// Whether `token` has the shape of [`Key::token`] (and not of an old address token).
    pub fn is_opaque(token: &str) -> bool {
        token.len() == 22
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// The token format of links sent by earlier versions (the address in base64 with its
    /// MAC). Only [`Key::verify`] reads it now; tests make one to prove old links work.
    pub fn address_token(&self, address: &str) -> String {
        let address = address.trim().to_lowercase();
        let tag = self.mac(&address).finalize().into_bytes();
        format!(
            "{}.{}",
            B64.encode(address.as_bytes()),
            B64.encode(&tag[..MAC_BYTES])
        )
    }

    /// The address an old-format token ([`Key::address_token`]) was made for, when genuine.
    pub fn verify(&self, token: &str) -> Option<String> {
        let (addr, tag) = token.split_once('.')?;
        let address = String::from_utf8(B64.decode(addr).ok()?).ok()?;
        let tag = B64.decode(tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        self.mac(&address).verify_truncated_left(&tag).ok()?;
        Some(address)
    }
}

/// Whose unsubscribe link an email carries.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    /// A reader's: `/unsubscribe/<opaque token>`.
    Reader(&'a Key, &'a str),
    /// A made-up reader's (`preview`, `test`): a link that unsubscribes nobody.
    Sample(&'static str),
}

/// The unsubscribe URL under `public_base` (`Config::public_base`): the one place links to
/// `/unsubscribe/<token>` (the server's route) are made.
pub fn unsubscribe_url(public_base: &str, link: Link<'_>) -> String {
    match link {
        Link::Reader(key, address) => format!("{public_base}/unsubscribe/{}", key.token(address)),
        Link::Sample(name) => format!("{public_base}/unsubscribe/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_address_tokens_still_verify_case_insensitively() {
        let k = Key::new(b"k".repeat(32));
        let t = k.address_token("Keiko.Suzuki@Example.JP");
        assert_eq!(t, k.address_token("keiko.suzuki@example.jp"));
        assert_eq!(k.verify(&t).as_deref(), Some("keiko.suzuki@example.jp"));
    }

    #[test]
    fn new_tokens_are_opaque_and_hold_nothing_of_the_address() {
        let k = Key::new(b"k".repeat(32));
        let address = "keiko.suzuki@example.jp";
        let t = k.token("Keiko.Suzuki@Example.JP");
        assert_eq!(t, k.token(address), "one token per address, any case");
        assert!(Key::is_opaque(&t), "{t}");
        assert!(!Key::is_opaque(&k.address_token(address)));
        assert_eq!(k.verify(&t), None, "not an address token");
        let encodings = [
            address.to_string(),
            B64.encode(address),
            crate::text::hex(address.as_bytes()),
        ];
        for e in &encodings {
            for part in [&e[..8], &e[e.len() - 8..]] {
                assert!(!t.contains(part), "{t} holds {part}");
            }
        }
        assert_ne!(t, Key::new(b"o".repeat(32)).token(address));
    }

    #[test]
    fn rejects_forged_and_foreign_tokens() {
        let k = Key::new(b"k".repeat(32));
        let t = k.address_token("a@example.jp");
        let (_, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64.encode("b@example.jp"));
        assert_eq!(k.verify(&forged), None);
        assert_eq!(Key::new(b"o".repeat(32)).verify(&t), None);
        assert_eq!(k.verify("garbage"), None);
    }

    #[test]
    fn generates_a_private_secret_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Key::load_file(dir.path(), false).unwrap().is_none());
        let a = Key::load_file(dir.path(), true).unwrap().unwrap();
        let b = Key::load_file(dir.path(), false).unwrap().unwrap();
        assert_eq!(a.token("x@y.jp"), b.token("x@y.jp"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("state/secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
