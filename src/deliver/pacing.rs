//! Pacing per destination domain: the Japanese carriers take mail slowly and punish bursts
//! (docomo: at most 100 recipients per SMTP session, no bursts at the top of the hour; au resets
//! connections when it throttles; SoftBank blocks senders with many unknown recipients), so
//! their messages go out on lanes of their own — few connections, a steady rate, a new
//! connection every so many messages — while every other domain keeps full speed.
//!
//! Built-in groups (always on, overridable by `pacing:` in `tayori.yaml`, whose keys are a
//! domain or several separated by commas, paced together): docomo, au, SoftBank, Rakuten,
//! Y!mobile — one connection, 60 messages a minute, 100 per connection.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::{Config, PaceLimits};

/// The built-in carrier groups: (name, domains).
const CARRIERS: &[(&str, &[&str])] = &[
    ("docomo", &["docomo.ne.jp"]),
    ("au", &["ezweb.ne.jp", "au.com"]),
    (
        "softbank",
        &[
            "softbank.ne.jp",
            "i.softbank.jp",
            "disney.ne.jp",
            "vodafone.ne.jp",
        ],
    ),
    ("rakuten", &["rakumail.jp"]),
    ("ymobile", &["ymobile.ne.jp", "ymobile1.ne.jp"]),
];

/// The carriers' default limits: conservative, well under what they are reported to take.
pub const CARRIER_LIMITS: PaceLimits = PaceLimits {
    connections: 1,
    per_minute: 60,
    per_connection: 100,
};

/// A paced group of domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub domains: Vec<String>,
    pub limits: PaceLimits,
}

impl Group {
    /// The steady gap between two messages of this group.
    pub fn gap(&self) -> Option<Duration> {
        NonZeroU32::new(self.limits.per_minute).map(|n| Duration::from_secs(60) / n.get())
    }
}

/// Every paced group: the configuration's first (they win), then the built-in carriers.
pub fn groups(config: &Config) -> Vec<Group> {
    let mut out: Vec<Group> = config
        .pacing
        .iter()
        .map(|(key, limits)| Group {
            name: key.clone(),
            domains: key
                .split([',', ' '])
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            limits: *limits,
        })
        .collect();
    for (name, domains) in CARRIERS {
        let domains: Vec<String> = domains
            .iter()
            .filter(|d| !out.iter().any(|g| g.domains.iter().any(|o| o == *d)))
            .map(|d| d.to_string())
            .collect();
        if !domains.is_empty() {
            out.push(Group {
                name: name.to_string(),
                domains,
                limits: CARRIER_LIMITS,
            });
        }
    }
    out
}

/// The group an address belongs to (its domain or a parent domain), if any.
pub fn group_of(groups: &[Group], address: &str) -> Option<usize> {
    let domain = address.rsplit('@').next()?;
    groups.iter().position(|g| {
        g.domains
            .iter()
            .any(|d| crate::subscribers::in_domain(domain, d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriers_are_paced_by_default_and_the_configuration_wins() {
        let text = "site:\n  title: T\n  url: https://example.jp/\nsender:\n  from: T <n@example.jp>\npacing:\n  docomo.ne.jp: { connections: 2, per_minute: 120, per_connection: 50 }\n  \"example.org, example.net\": { connections: 1, per_minute: 30, per_connection: 10 }\n";
        let config = crate::config::parse(text, std::path::Path::new("t.yaml")).unwrap();
        let g = groups(&config);
        let docomo = group_of(&g, "A@DoCoMo.ne.jp").unwrap();
        assert_eq!(g[docomo].limits.connections, 2);
        let au = group_of(&g, "x@biz.ezweb.ne.jp").unwrap();
        assert_eq!(g[au].limits, CARRIER_LIMITS);
        assert_eq!(group_of(&g, "a@example.net"), group_of(&g, "b@example.org"));
        assert!(group_of(&g, "someone@gmail.com").is_none());
        assert_eq!(g[au].gap(), Some(Duration::from_secs(1)));
    }
}
