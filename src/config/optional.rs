//! The optional sections of `tayori.yaml`, each off when absent: `subscribe:` (the sign-up
//! form), `bounces:` (the bounce mailbox and VERP), `websub:` (hubs) and `pacing:` entries
//! (the carriers are paced even without them).

use serde::Deserialize;

use super::Config;

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
    /// `maildir:///path/to/Maildir` (IMAP and POP3 are not read yet).
    #[serde(default)]
    pub mailbox: Option<String>,
    /// The envelope sender; messages go out as `local+<tag>@domain` (VERP).
    #[serde(default)]
    pub address: Option<String>,
    /// How often the daemon reads the mailbox, e.g. `5m`, `30s`.
    #[serde(default = "default_poll")]
    pub poll: String,
}

fn default_poll() -> String {
    "5m".into()
}

impl Bounces {
    /// The Maildir folder, when `mailbox` names one.
    pub fn maildir(&self) -> Option<std::path::PathBuf> {
        let m = self.mailbox.as_deref()?;
        url::Url::parse(m)
            .ok()
            .filter(|u| u.scheme() == "maildir")
            .map(|u| std::path::PathBuf::from(u.path()))
    }

    /// `poll` as a duration (`90s`, `5m`, `1h`; a bare number is seconds).
    pub fn poll_every(&self) -> Option<std::time::Duration> {
        let p = self.poll.trim();
        let (n, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
        let n: u64 = n.parse().ok()?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return None,
        };
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
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
            let (name, _) = crate::render::email::sender_parts(config);
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
