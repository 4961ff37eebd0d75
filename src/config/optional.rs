//! The optional sections of `tayori.yaml`, each off when absent: `subscribe:` (the sign-up
//! form), `bounces:` (the bounce mailbox and VERP), `websub:` (hubs), the cross-post targets
//! `wordpress:` and `micropub:`, and `pacing:` entries (the carriers are paced even without
//! them).

use serde::Deserialize;

use super::span::{Period, Span};
use super::{Config, Parsed};

/// `records:`: how long each issue's record (content and recipients) is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    /// `3y`, `5y`, `400d`: years count 366 days, so a record is never purged early.
    #[serde(default = "default_keep")]
    pub keep: Parsed<Period>,
}

fn default_keep() -> Parsed<Period> {
    Parsed::new("3y")
}

impl Config {
    /// How long each issue's record is kept (`records.keep`, default three years).
    pub fn records_keep(&self) -> chrono::TimeDelta {
        self.records
            .as_ref()
            .and_then(|r| r.keep.get())
            .map_or(chrono::TimeDelta::days(3 * 366), |p| p.0)
    }
}

/// `websub:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSub {
    /// Hub URLs (W3C WebSub §4).
    pub hubs: Vec<String>,
}

impl Config {
    /// The WebSub hubs, if any.
    pub fn hubs(&self) -> &[String] {
        self.websub.as_ref().map_or(&[], |w| w.hubs.as_slice())
    }
}

/// Whether a cross-posted article goes live at once or waits as a draft for the attorney.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostStatus {
    #[default]
    Publish,
    Draft,
}

impl PostStatus {
    /// `publish` or `draft`, as WordPress and Micropub (`post-status`) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Publish => "publish",
            PostStatus::Draft => "draft",
        }
    }
}

/// `wordpress:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordPress {
    /// The blog's address (its REST API is at `<url>/wp-json/`).
    pub url: String,
    /// The user the application password belongs to; the password comes from
    /// `TAYORI_WORDPRESS_PASSWORD`.
    pub user: String,
    #[serde(default)]
    pub status: PostStatus,
}

impl WordPress {
    /// The application password, from `TAYORI_WORDPRESS_PASSWORD`.
    pub fn password(&self) -> Option<String> {
        std::env::var("TAYORI_WORDPRESS_PASSWORD")
            .ok()
            .filter(|p| !p.trim().is_empty())
    }

    /// `<url>/wp-json/wp/v2/` with exactly one `/` between the parts.
    pub fn api(&self) -> String {
        format!("{}/wp-json/wp/v2/", self.url.trim_end_matches('/'))
    }
}

/// `micropub:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Micropub {
    /// The Micropub endpoint.
    pub endpoint: String,
    /// The bearer token; `TAYORI_MICROPUB_TOKEN` overrides.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub status: PostStatus,
}

impl Micropub {
    /// The bearer token: `TAYORI_MICROPUB_TOKEN`, else `token`.
    pub fn token(&self) -> Option<String> {
        std::env::var("TAYORI_MICROPUB_TOKEN")
            .ok()
            .or_else(|| self.token.clone())
            .filter(|t| !t.trim().is_empty())
    }
}

impl Config {
    /// What is wrong with `wordpress:` and `micropub:`; `is_web` tells an http(s) URL.
    pub(super) fn target_problems(&self, is_web: impl Fn(&str) -> bool) -> Vec<String> {
        let mut bad = Vec::new();
        if let Some(w) = &self.wordpress {
            if !is_web(&w.url) {
                bad.push(format!("wordpress.url: `{}` is not an http(s) URL", w.url));
            } else if cleartext(&w.url) {
                bad.push(format!("wordpress.url: `{}` would send the application password in clear text; use https (plain http only to this machine)", w.url));
            }
            if w.user.trim().is_empty() {
                bad.push("wordpress.user: empty (the WordPress user the application password belongs to)".into());
            }
            if w.password().is_none() {
                bad.push("wordpress: TAYORI_WORDPRESS_PASSWORD is not set (an application password: Users → Profile → Application Passwords)".into());
            }
        }
        if let Some(m) = &self.micropub {
            if !is_web(&m.endpoint) {
                bad.push(format!(
                    "micropub.endpoint: `{}` is not an http(s) URL",
                    m.endpoint
                ));
            } else if cleartext(&m.endpoint) {
                bad.push(format!("micropub.endpoint: `{}` would send the token in clear text; use https (plain http only to this machine)", m.endpoint));
            }
            if m.token().is_none() {
                bad.push("micropub: no token (set micropub.token or TAYORI_MICROPUB_TOKEN)".into());
            }
        }
        bad
    }
}

/// Whether a credential sent to `url` would cross the network unencrypted: plain http to any
/// host but this machine (a blog on the same server, or a test, may be reached over loopback).
fn cleartext(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let local = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    u.scheme() == "http" && !local
}

/// One `pacing:` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaceLimits {
    /// Connections at once for this group.
    pub connections: u32,
    /// Messages a minute, spread evenly; 0 = no limit.
    pub per_minute: u32,
    /// Messages on one connection before a new one is opened.
    pub per_connection: u32,
}

/// `bounces:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounces {
    /// `imaps://user@host/INBOX`, `pop3s://user@host` or `maildir:///path/to/Maildir`.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// What becomes of a report once acted on: `mark` (seen; the default) or `delete`.
    #[serde(default)]
    pub processed: Processed,
    /// The envelope sender; messages go out as `local+<tag>@domain` (VERP).
    #[serde(default)]
    pub address: Option<String>,
    /// How often the daemon reads the mailbox, e.g. `5m`, `30s`.
    #[serde(default = "default_poll")]
    pub poll: Parsed<Span>,
}

/// `bounces.processed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Processed {
    /// Seen: the Maildir `S` flag, IMAP `\Seen`; POP3 leaves it (it is remembered).
    #[default]
    Mark,
    /// Deleted from the mailbox.
    Delete,
}

fn default_poll() -> Parsed<Span> {
    Parsed::new("5m")
}

impl Bounces {
    /// The mailbox, when `mailbox` names one (or why its URL is unusable).
    pub fn mailbox_url(&self) -> Option<Result<super::MailboxUrl, String>> {
        Some(super::MailboxUrl::parse(
            self.mailbox.as_deref()?,
            "bounces.mailbox",
        ))
    }

    /// `poll` as a duration (`90s`, `5m`, `1h`; a bare number is seconds); `None` when it is
    /// not one, or zero.
    pub fn poll_every(&self) -> Option<std::time::Duration> {
        self.poll.get().map(|s| s.0).filter(|d| !d.is_zero())
    }
}

/// `subscribe:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The list confirmed sign-ups join.
    #[serde(default = "default_signup_list")]
    pub list: String,
    /// Shown beside the address field, and kept with each sign-up (特定電子メール法).
    #[serde(default)]
    pub consent_text: Option<String>,
    /// Send a welcome email once an address is confirmed.
    #[serde(default)]
    pub welcome: bool,
    /// Keep the client's IP address in the consent record.
    #[serde(default)]
    pub keep_ip: bool,
}

impl Subscribe {
    /// The consent text shown: `consent_text`, else one naming the sender.
    pub fn consent(&self, config: &Config) -> String {
        self.consent_text.clone().unwrap_or_else(|| {
            let (name, _) = config.sender_parts();
            format!(
                "{name}から、ニュースレター「{}」（広告・宣伝を含みます）をメールでお送りします。配信はいつでも、各メールの末尾のリンクから停止できます。",
                config.site.title
            )
        })
    }
}

fn default_signup_list() -> String {
    "web".into()
}

#[cfg(test)]
mod tests {
    use super::cleartext;

    #[test]
    fn a_credential_over_plain_http_is_cleartext_except_to_this_machine() {
        assert!(cleartext("http://blog.example.jp/"));
        assert!(cleartext("HTTP://blog.example.jp/micropub"));
        assert!(!cleartext("https://blog.example.jp/"));
        assert!(!cleartext("http://127.0.0.1:8081/"));
        assert!(!cleartext("http://[::1]:8081/"));
        assert!(!cleartext("http://localhost/"));
    }
}
