//! Mailbox URLs, as `bounces.mailbox` and `editor.inbox` name them: `maildir:///path`,
//! `imaps://user@host[:993]/FOLDER` (RFC 5092), `imap://`, `pop3s://user@host[:995]`
//! (RFC 2384) and `pop3://`. Parsed here so that checking a configuration needs no mail code;
//! [`crate::mailbox`] reads what they name.

use std::path::PathBuf;

/// A mailbox named by a URL. Its `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum MailboxUrl {
    /// A Maildir folder (`new/` and `cur/` under it).
    Maildir(PathBuf),
    /// A mailbox on a server.
    Remote(Remote),
}

/// A mailbox on a server: IMAP or POP3, with or without TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    pub pop3: bool,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The password written in the URL, if any (the environment's comes first).
    pub password: Option<String>,
    /// The IMAP folder (`INBOX` when none is named).
    pub folder: String,
}

impl MailboxUrl {
    /// Parses `url` for the key `key` (`bounces.mailbox`, `editor.inbox`, named in errors).
    pub fn parse(url: &str, key: &str) -> Result<MailboxUrl, String> {
        let shown = crate::text::redacted_url(url);
        let bad = || {
            format!(
                "{key}: `{shown}` is not a mailbox (imaps://user@host/INBOX, pop3s://user@host or maildir:///path/to/Maildir)"
            )
        };
        let u = url::Url::parse(url).map_err(|_| bad())?;
        if u.scheme() == "maildir" {
            return Ok(MailboxUrl::Maildir(PathBuf::from(u.path())));
        }
        let (pop3, tls, port) = match u.scheme() {
            "imaps" => (false, true, 993),
            "imap" => (false, false, 143),
            "pop3s" => (true, true, 995),
            "pop3" => (true, false, 110),
            _ => return Err(bad()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let folder = decode(u.path().trim_start_matches('/'));
        let remote = Remote {
            pop3,
            tls,
            port: u.port().unwrap_or(port),
            password: u.password().map(decode),
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder
            },
            user: decode(u.username()),
            host: u
                .host_str()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string(),
        };
        remote.check(&shown, key).map(MailboxUrl::Remote)
    }

    /// The mailbox as shown in messages (never the password).
    pub fn name(&self) -> String {
        match self {
            MailboxUrl::Maildir(dir) => format!("maildir {}", dir.display()),
            MailboxUrl::Remote(r) => r.name(),
        }
    }
}

impl Remote {
    fn check(self, url: &str, key: &str) -> Result<Remote, String> {
        if self.host.is_empty() || self.user.is_empty() {
            return Err(format!(
                "{key}: `{url}` needs a user and a host (imaps://user@host/INBOX)"
            ));
        }
        let local = self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        if !self.tls && !local {
            return Err(format!(
                "{key}: `{url}` would send the password in clear over the network: use imaps:// or pop3s://"
            ));
        }
        Ok(self)
    }

    /// `imap host:port` or `pop3 host:port`, as shown in messages.
    pub fn name(&self) -> String {
        format!(
            "{}{}:{}",
            if self.pop3 { "pop3 " } else { "imap " },
            self.host,
            self.port
        )
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::fmt::Debug for MailboxUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::MailboxUrl;

    #[test]
    fn every_mailbox_scheme_parses_and_a_clear_password_over_the_network_is_refused() {
        let m = MailboxUrl::parse("imaps://posts@mail.example.jp/INBOX", "editor.inbox").unwrap();
        let MailboxUrl::Remote(r) = m else { panic!() };
        assert_eq!(
            (r.pop3, r.tls, r.port, r.folder.as_str()),
            (false, true, 993, "INBOX")
        );
        let m = MailboxUrl::parse("pop3s://u:p%40ss@mail.example.jp", "editor.inbox").unwrap();
        let MailboxUrl::Remote(r) = m else { panic!() };
        assert_eq!(
            (r.pop3, r.port, r.password.as_deref()),
            (true, 995, Some("p@ss"))
        );
        assert_eq!(
            MailboxUrl::parse("maildir:///srv/mail/posts", "editor.inbox").unwrap(),
            MailboxUrl::Maildir("/srv/mail/posts".into())
        );
        let e = MailboxUrl::parse("imap://u@mail.example.jp/", "editor.inbox").unwrap_err();
        assert!(
            e.starts_with("editor.inbox:") && e.contains("in clear"),
            "{e}"
        );
        assert!(MailboxUrl::parse("imap://u@127.0.0.1:1143/", "editor.inbox").is_ok());
        assert!(MailboxUrl::parse("https://x/", "bounces.mailbox").is_err());
    }
}
