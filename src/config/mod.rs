//! `tayori.yaml`: the newsletter's configuration (docs/configuration.md).
//!
//! [`parse`] turns YAML 1.2 text into a [`Config`] (unknown keys are errors, reported with the
//! line of the key), [`Config::validate`] checks what the types cannot say (addresses, URLs,
//! time zone, schedule), and [`load`] does both for a newsletter folder. Defaults follow the
//! contract: `language: ja`, `timezone: Asia/Tokyo`, no SMTP (write `outbox/`), no webhook.

use std::path::Path;

use serde::Deserialize;

use crate::problem::Problem;

pub mod calendar;
pub mod editor;
mod mailbox;
mod optional;
mod parsed;
pub mod schedule;
pub mod smtp;
pub mod span;
pub use mailbox::{MailboxUrl, Remote as RemoteMailbox};
pub use optional::{
    Bounces, Micropub, PaceLimits, PostStatus, Processed, Records, Subscribe, WebSub, WordPress,
};
pub use parsed::Parsed;
pub use schedule::Schedule;
pub use smtp::SmtpUrl;

/// The file name of the configuration inside a newsletter folder.
pub const FILE_NAME: &str = "tayori.yaml";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The newsletter itself.
    pub site: Site,
    /// Who the email comes from (shown in the legal footer).
    pub sender: Sender,
    /// How posts are read.
    #[serde(default)]
    pub posts: PostsConfig,
    /// When issues go out: crontab, 5 fields or 6 with leading seconds, in `site.timezone`.
    #[serde(default = "default_schedule")]
    pub schedule: Parsed<Schedule>,
    /// Where mail goes; absent means `.eml` files in `outbox/`.
    #[serde(default)]
    pub smtp: Option<Smtp>,
    /// Where posts are cross-posted; absent means nowhere.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// The HTTP server for feeds, archive and unsubscribe.
    #[serde(default)]
    pub server: Server,
    /// The public sign-up form (double opt-in); absent means no form.
    #[serde(default)]
    pub subscribe: Option<Subscribe>,
    /// Where bounce reports arrive, and the envelope sender they go back to.
    #[serde(default)]
    pub bounces: Option<Bounces>,
    /// WebSub hubs named in every feed and pinged on every change.
    #[serde(default)]
    pub websub: Option<WebSub>,
    /// Cross-posting to a WordPress blog through its REST API.
    #[serde(default)]
    pub wordpress: Option<WordPress>,
    /// Cross-posting to a blog that speaks Micropub (W3C).
    #[serde(default)]
    pub micropub: Option<Micropub>,
    /// Pacing per destination domain (or several, comma-separated, paced together); the
    /// Japanese carriers are paced by default (see `deliver::pacing`).
    #[serde(default)]
    pub pacing: std::collections::BTreeMap<String, PaceLimits>,
    /// Days without an issue: their ticks pass and the issue waits for the first tick after.
    #[serde(default)]
    pub calendar: Option<calendar::Calendar>,
    /// How long each issue's record (content and recipients) is kept (業務広告規程 第11条).
    #[serde(default)]
    pub records: Option<Records>,
    /// The office: who hears from tayori (receipts, proofs, reports, alerts).
    #[serde(default)]
    pub editor: Option<editor::Editor>,
}

/// `site:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The newsletter's name.
    pub title: String,
    /// Base of post links in feeds and emails; always ends with `/` after [`Config::validate`].
    pub url: String,
    /// BCP 47 language tag of the content.
    #[serde(default = "default_language")]
    pub language: String,
    /// IANA time zone for dates and the schedule.
    #[serde(default = "default_timezone")]
    pub timezone: Parsed<chrono_tz::Tz>,
    /// The author (the attorney's name): feeds, and with `sender.bar_association` every email
    /// footer and archive page.
    #[serde(default)]
    pub author: Option<String>,
    /// The office's icon (a square PNG or ICO), an absolute http(s) URL or a path under
    /// `site.url`: RSS `<image>`, Atom `<icon>`, JSON Feed `icon`/`favicon`, the archive's
    /// favicon. Absolute after [`Config::validate`].
    #[serde(default)]
    pub icon: Option<String>,
}

/// `sender:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// RFC 5322 mailbox, e.g. `相談室 <news@example.jp>`.
    pub from: String,
    /// Address replies go to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Postal address, shown in every footer (特定電子メール法).
    #[serde(default)]
    pub address: Option<String>,
    /// Telephone, shown in every footer.
    #[serde(default)]
    pub phone: Option<String>,
    /// 所属弁護士会: with `site.author`, shown in every email footer and archive page (日弁連
    /// 「弁護士の業務広告に関する規程」第9条 asks for the lawyer's name and bar association).
    #[serde(default)]
    pub bar_association: Option<String>,
}

/// `posts:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostsConfig {
    /// Plain-text boilerplate lines to drop (exact match after trimming).
    #[serde(default)]
    pub strip_lines: Vec<String>,
}

/// `smtp:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// `smtp://host:port` (STARTTLS when offered) or `smtps://`, with `user@` if needed.
    pub url: Parsed<SmtpUrl>,
    /// Parallel SMTP connections.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Messages per second over all connections; 0 = unlimited.
    #[serde(default)]
    pub max_per_second: u32,
    /// Sign messages with DKIM (RFC 6376).
    #[serde(default)]
    pub dkim: Option<Dkim>,
}

/// `smtp.dkim:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    /// `d=`: the signing domain.
    pub domain: String,
    /// `s=`: the selector; the public key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM RSA private key (PKCS #1 or #8), relative to the newsletter folder.
    pub private_key_file: String,
}

/// `webhook:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where events are POSTed.
    pub url: String,
    /// Standard Webhooks secret `whsec_<base64>`; `TAYORI_WEBHOOK_SECRET` overrides.
    #[serde(default)]
    pub secret: Option<String>,
}

/// `server:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Socket address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base of unsubscribe and "view in browser" links; no trailing `/` after validation.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The reverse proxy in front (its IP address): only from it is `X-Forwarded-For` believed.
    #[serde(default)]
    pub trusted_proxy: Option<std::net::IpAddr>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            public_url: None,
            trusted_proxy: None,
        }
    }
}

fn default_schedule() -> Parsed<Schedule> {
    Parsed::new("0 9 * * Mon")
}
fn default_language() -> String {
    "ja".into()
}
fn default_timezone() -> Parsed<chrono_tz::Tz> {
    Parsed::new("Asia/Tokyo")
}
fn default_concurrency() -> u32 {
    8
}

/// More parallel connections than any relay grants one sender, and each costs memory.
pub const MAX_CONCURRENCY: u32 = 100;

/// Why recipients could not open links to `server.public_url` (plain http, or this machine),
/// or `None` when they can. An error for `check` when mail goes out through SMTP.
pub fn unreachable_public_url(config: &Config) -> Option<String> {
    let base = config.public_base();
    let u = url::Url::parse(&base).ok()?;
    let local = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => false,
    };
    let why = match (u.scheme() == "http", local) {
        (_, true) => "is on this machine",
        (true, false) => "is plain http",
        (false, false) => return None,
    };
    Some(format!(
        "server.public_url: `{base}` {why}, so recipients could not open their unsubscribe links; set server.public_url to the https address readers reach (e.g. https://news.example.jp)"
    ))
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// Parses YAML text into a [`Config`]; the error names `path` and the line of the offending key.
pub fn parse(text: &str, path: &Path) -> Result<Config, Problem> {
    serde_saphyr::from_str::<Config>(text).map_err(|e| yaml_problem(&e, path))
}

/// Turns a YAML error into a one-line [`Problem`] with its line: serde-saphyr's user-facing
/// wording (no advice about its own options), the location given as our `path:line` prefix.
pub(crate) fn yaml_problem(e: &serde_saphyr::Error, path: &Path) -> Problem {
    use serde_saphyr::MessageFormatter as _;
    let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
    let message = serde_saphyr::UserMessageFormatter.format_message(e.without_snippet());
    Problem::new(path, line, crate::text::one_line(&message))
}

impl Config {
    /// Checks values the types cannot, normalising URLs; returns every problem found.
    pub fn validate(&mut self, path: &Path) -> Vec<Problem> {
        let mut bad = self.normalise_urls();
        bad.extend(self.site_and_sender_problems());
        bad.extend(self.sending_problems());
        bad.extend(self.optional_problems());
        bad.into_iter()
            .map(|m| Problem::new(path, None, m))
            .collect()
    }

    /// Makes `site.url`, `site.icon` and `server.public_url` absolute and canonical; what
    /// cannot be made so is a problem.
    fn normalise_urls(&mut self) -> Vec<String> {
        let mut bad = Vec::new();
        match url_base(&self.site.url) {
            Some(u) => self.site.url = format!("{u}/"),
            None => bad.push(format!(
                "site.url: `{}` is not an absolute http(s) URL",
                self.site.url
            )),
        }
        if let Some(icon) = self.site.icon.clone() {
            let resolved = url::Url::parse(&self.site.url)
                .and_then(|base| base.join(icon.trim()))
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            match resolved {
                Some(u) => self.site.icon = Some(u.to_string()),
                None => bad.push(format!(
                    "site.icon: `{icon}` is not an http(s) URL or a path under site.url"
                )),
            }
        }
        if let Some(p) = &self.server.public_url {
            match url_base(p) {
                Some(u) => self.server.public_url = Some(u),
                None => bad.push(format!("server.public_url: `{p}` is not an http(s) URL")),
            }
        }
        bad
    }

    /// `site:`, `sender:`, `schedule` and `server.listen`.
    fn site_and_sender_problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if self.site.title.trim().is_empty() {
            bad.push("site.title: must not be empty".into());
        }
        if self.site.timezone.problem().is_some() {
            bad.push(format!(
                "site.timezone: `{}` is not an IANA time zone (e.g. Asia/Tokyo)",
                self.site.timezone.text()
            ));
        }
        if self
            .sender
            .from
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            bad.push(format!(
                "sender.from: `{}` is not a mailbox (e.g. 相談室 <news@example.jp>)",
                self.sender.from
            ));
        }
        if let Some(r) = &self.sender.reply_to {
            if r.parse::<lettre::message::Mailbox>().is_err() {
                bad.push(format!("sender.reply_to: `{r}` is not an email address"));
            }
        }
        if let Some(e) = self.schedule.problem() {
            bad.push(format!("schedule: {e}"));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bad.push(format!(
                "server.listen: `{}` is not a socket address (e.g. 127.0.0.1:8080)",
                self.server.listen
            ));
        }
        bad
    }

    /// `smtp:`, `bounces:` and `pacing:`: how mail leaves and comes back.
    fn sending_problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if let Some(smtp) = &self.smtp {
            if let Some(e) = smtp.url.problem() {
                bad.push(e.to_string());
            }
            if !(1..=MAX_CONCURRENCY).contains(&smtp.concurrency) {
                bad.push(format!(
                    "smtp.concurrency: {} is out of range (1 to {MAX_CONCURRENCY})",
                    smtp.concurrency
                ));
            }
        }
        if let Some(b) = &self.bounces {
            if let Some(Err(e)) = b.mailbox_url() {
                bad.push(e);
            }
            if let Some(a) = &b.address {
                if a.parse::<lettre::Address>().is_err() {
                    bad.push(format!("bounces.address: `{a}` is not an email address"));
                }
            }
            if b.poll_every().is_none() {
                bad.push(format!(
                    "bounces.poll: `{}` is not a duration (e.g. 5m, 30s)",
                    b.poll.text()
                ));
            }
        }
        for (key, p) in &self.pacing {
            if p.connections == 0 || p.connections > MAX_CONCURRENCY || p.per_connection == 0 {
                bad.push(format!(
                    "pacing.{key}: connections must be 1 to {MAX_CONCURRENCY} and per_connection at least 1"
                ));
            }
        }
        bad
    }

    /// The other optional sections: webhook, sign-up, hubs, cross-post targets, records,
    /// calendar and the office.
    fn optional_problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if let Some(w) = &self.webhook {
            if url_base(&w.url).is_none() {
                bad.push(format!("webhook.url: `{}` is not an http(s) URL", w.url));
            }
            if let Err(e) = self.webhook_key() {
                bad.push(e);
            }
        }
        if let Some(s) = &self.subscribe {
            if !crate::text::is_name(&s.list) {
                bad.push(format!(
                    "subscribe.list: `{}` must be letters, digits, `-` or `_` (a list name)",
                    s.list
                ));
            }
            if s.consent_text
                .as_deref()
                .is_some_and(|t| t.trim().is_empty())
            {
                bad.push(
                    "subscribe.consent_text: must not be empty (leave it out for the default)"
                        .into(),
                );
            }
        }
        for hub in self.hubs() {
            if url_base(hub).is_none() {
                bad.push(format!("websub.hubs: `{hub}` is not an http(s) URL"));
            }
        }
        bad.extend(self.target_problems(|u| url_base(u).is_some()));
        if let Some(r) = self.records.as_ref().filter(|r| r.keep.problem().is_some()) {
            bad.push(format!(
                "records.keep: `{}` is not a period (e.g. 3y, 5y, 1100d)",
                r.keep.text()
            ));
        }
        if let Some(c) = &self.calendar {
            bad.extend(c.rules().1);
        }
        if let Some(e) = &self.editor {
            let is_address = |a: &str| a.parse::<lettre::Address>().is_ok();
            let is_web = |u: &str| url_base(u).is_some();
            bad.extend(e.problems(is_address, is_web));
        }
        bad
    }

    /// The time zone (valid after [`Config::validate`]; Tokyo otherwise).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.site
            .timezone
            .get()
            .copied()
            .unwrap_or(chrono_tz::Asia::Tokyo)
    }

    /// Base URL of links that tayori's own server answers (unsubscribe, view in browser):
    /// `server.public_url`, else `site.url` without its trailing slash.
    pub fn public_base(&self) -> String {
        match &self.server.public_url {
            Some(u) => u.clone(),
            None => self.site.url.trim_end_matches('/').to_string(),
        }
    }

    /// The secret's key bytes: `TAYORI_WEBHOOK_SECRET` or `webhook.secret`, `whsec_` + base64 of
    /// at least 16 bytes (Standard Webhooks secrets are 24 to 64). Never empty: an empty key would
    /// let anyone sign.
    pub fn webhook_key(&self) -> Result<Vec<u8>, String> {
        let s = std::env::var("TAYORI_WEBHOOK_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.webhook.as_ref().and_then(|w| w.secret.clone()))
            .filter(|s| !s.trim().is_empty())
            .ok_or("webhook.secret: missing (set it, or TAYORI_WEBHOOK_SECRET, to whsec_ and the base64 of 24 random bytes or more)")?;
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            s.strip_prefix("whsec_").unwrap_or(&s),
        )
        .map_err(|_| "webhook.secret: not whsec_ followed by base64".to_string())?;
        if key.len() < 16 {
            return Err(format!(
                "webhook.secret: {} bytes is too short (24 or more expected)",
                key.len()
            ));
        }
        Ok(key)
    }

    /// The sender's display name (or the site title) and address, from `sender.from`.
    pub fn sender_parts(&self) -> (String, String) {
        match self.sender.from.parse::<lettre::message::Mailbox>() {
            Ok(m) => (
                m.name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| self.site.title.clone()),
                m.email.to_string(),
            ),
            Err(_) => (self.site.title.clone(), self.sender.from.clone()),
        }
    }

    /// The canonical link of a post.
    pub fn post_url(&self, slug: &str) -> String {
        format!("{}posts/{slug}.html", self.site.url)
    }
}

/// `url` without trailing slashes when it is an absolute http(s) URL with a host (WHATWG URL
/// parsing, by the `url` crate); kept as written otherwise, so links stay as the user typed.
fn url_base(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let web = matches!(u.scheme(), "http" | "https");
    let host = u.host_str().is_some_and(|h| !h.is_empty());
    (web && host && !url.chars().any(char::is_whitespace))
        .then(|| url.trim_end_matches('/').to_string())
}

/// Reads, parses and validates `tayori.yaml` in `root`.
pub fn load(root: &Path) -> Result<Config, Vec<Problem>> {
    let (config, problems) = read_and_validate(root)?;
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// The configuration even when it has problems (for `status`, which shows what the store holds
/// whatever is wrong with the file, such as a secret missing from this shell's environment);
/// `None` only when it cannot be read or parsed at all.
pub fn load_lenient(root: &Path) -> Option<Config> {
    read_and_validate(root).ok().map(|(config, _)| config)
}

/// Reads, parses and validates `tayori.yaml`: the configuration and its problems, or why it
/// could not be read or parsed.
fn read_and_validate(root: &Path) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let path = root.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        vec![Problem::new(
            &path,
            None,
            format!("cannot read the configuration: {e}"),
        )]
    })?;
    let mut config = parse(&text, &path).map_err(|p| vec![p])?;
    let problems = config.validate(&path);
    Ok((config, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "site:\n  title: T\n  url: https://example.jp/blog\nsender:\n  from: T <news@example.jp>\n";

    #[test]
    fn fills_defaults_from_the_contract() {
        let mut c = parse(MINIMAL, Path::new("tayori.yaml")).unwrap();
        assert!(c.validate(Path::new("tayori.yaml")).is_empty());
        assert_eq!(c.site.language, "ja");
        assert_eq!(c.site.timezone.text(), "Asia/Tokyo");
        assert_eq!(c.site.url, "https://example.jp/blog/");
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert!(c.smtp.is_none());
        assert_eq!(c.post_url("a"), "https://example.jp/blog/posts/a.html");
    }

    #[test]
    fn rejects_unknown_key_with_its_line() {
        let text = format!("{MINIMAL}  colour: red\n");
        let p = parse(&text, Path::new("x/tayori.yaml")).unwrap_err();
        assert_eq!(p.line, Some(6), "{p}");
        assert!(p.message.contains("colour"), "{p}");
        assert!(p.to_string().starts_with("x/tayori.yaml:6: "), "{p}");
    }

    #[test]
    fn rejects_missing_required_key() {
        let p = parse("site:\n  title: T\n", Path::new("tayori.yaml")).unwrap_err();
        assert!(
            p.message.contains("url") || p.message.contains("sender"),
            "{p}"
        );
    }

    #[test]
    fn reports_every_invalid_value() {
        let text = "site:\n  title: T\n  url: example.jp\n  timezone: Mars/Base\nsender:\n  from: nobody\nschedule: \"61 * * * *\"\n";
        let mut c = parse(text, Path::new("tayori.yaml")).unwrap();
        let problems = c.validate(Path::new("tayori.yaml"));
        let all: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        assert_eq!(problems.len(), 4, "{all:?}");
        for key in ["site.url", "site.timezone", "sender.from", "schedule"] {
            assert!(all.iter().any(|m| m.starts_with(key)), "{key}: {all:?}");
        }
    }
}
