//! `editor:`: the office. tayori writes to these people about the newsletter itself —
//! receipts, proofs, reports and alerts — and, with `inbox`, takes posts they mail in.

use std::time::Duration;

use serde::Deserialize;

use super::span::Span;
use super::Parsed;

/// `editor:` as written in `tayori.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Editor {
    /// The editors' addresses: every editor mail goes to all of them.
    pub to: Vec<String>,
    /// How long before the tick that sends an issue its proof goes out (`24h`; `0`: none).
    #[serde(default = "default_review")]
    pub review: Parsed<Span>,
    /// An issue goes out only once an editor approved it.
    #[serde(default)]
    pub approval: bool,
    /// Alerts are also POSTed here as JSON (Slack, Mattermost, Google Chat incoming webhooks).
    #[serde(default)]
    pub alert_webhook: Option<String>,
    /// Post by email: the mailbox read for the editors' articles.
    #[serde(default)]
    pub inbox: Option<String>,
    /// How often the inbox is read.
    #[serde(default = "default_poll")]
    pub poll: Parsed<Span>,
    /// Whose `Authentication-Results` header to believe (the office's own mail server).
    #[serde(default)]
    pub trusted_authserv_id: Option<String>,
}

fn default_review() -> Parsed<Span> {
    Parsed::new("24h")
}

fn default_poll() -> Parsed<Span> {
    Parsed::new("1m")
}

impl Editor {
    /// `review` as a span; zero means no proof.
    pub fn review_before(&self) -> Duration {
        self.review
            .get()
            .map_or(Duration::from_secs(86_400), |s| s.0)
    }

    /// `poll` as a span, at least a second.
    pub fn poll_every(&self) -> Duration {
        self.poll
            .get()
            .map(|s| s.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(60))
    }

    /// What is wrong with this section, one line each; `is_address` tells an email address
    /// and `is_web` an http(s) URL.
    pub fn problems(
        &self,
        is_address: impl Fn(&str) -> bool,
        is_web: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut bad = Vec::new();
        if self.to.is_empty() {
            bad.push(
                "editor.to: no address (the office's addresses, e.g. [sakura@example.jp])".into(),
            );
        }
        for a in &self.to {
            if !is_address(a) {
                bad.push(format!("editor.to: `{a}` is not an email address"));
            }
        }
        if self.review.problem().is_some() {
            bad.push(format!(
                "editor.review: `{}` is not a duration (e.g. 24h, 90m; 0 for no proof)",
                self.review.text()
            ));
        }
        if self.poll.get().is_none_or(|s| s.0.is_zero()) {
            bad.push(format!(
                "editor.poll: `{}` is not a duration (e.g. 1m, 30s)",
                self.poll.text()
            ));
        }
        if let Some(Err(e)) = self
            .inbox
            .as_deref()
            .map(|i| super::MailboxUrl::parse(i, "editor.inbox"))
        {
            bad.push(e);
        }
        if let Some(w) = self.alert_webhook.as_deref().filter(|w| !is_web(w)) {
            bad.push(format!("editor.alert_webhook: `{w}` is not an http(s) URL"));
        }
        bad
    }
}
