//! Who may post by email.
//!
//! stand-in until the auth module lands: this version believes only the topmost
//! `Authentication-Results` header (RFC 8601) whose authserv-id is `editor.trusted_authserv_id`
//! saying `dmarc=pass`; it verifies no DKIM signature. The lead replaces this file with the
//! authentication helper's, which has the same interface.

/// Whether a message mailed to the inbox may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// From an editor and authenticated: the editor's address, lowercased.
    Editor(String),
    /// From is not one of the editors.
    Stranger,
    /// From is an editor's address but the message is not authenticated: why, one line.
    Forged(String),
}

/// The DNS resolver the verdict uses (stand-in: unused).
#[derive(Debug, Clone)]
pub struct Resolver;

impl Resolver {
    /// The system's resolver, or `TAYORI_RESOLVER=IP:PORT`.
    pub fn from_env() -> anyhow::Result<Resolver> {
        Ok(Resolver)
    }
}

/// The verdict on the raw message `raw` for the editors `editors`.
pub async fn verdict(
    raw: &[u8],
    editors: &[String],
    trusted_authserv_id: Option<&str>,
    _resolver: &Resolver,
) -> Verdict {
    // stand-in until the auth module lands
    let Some(message) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Verdict::Stranger;
    };
    let from: Vec<String> = message
        .from()
        .map(|a| {
            a.iter()
                .filter_map(|a| a.address())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let [from] = from.as_slice() else {
        return Verdict::Stranger;
    };
    if !editors.iter().any(|e| e.to_lowercase() == *from) {
        return Verdict::Stranger;
    }
    let Some(trusted) = trusted_authserv_id else {
        return Verdict::Forged(
            "no trusted Authentication-Results (editor.trusted_authserv_id is not set)".into(),
        );
    };
    // The topmost field, whoever wrote it: one from another server above the trusted one was
    // added after the trusted server checked the message.
    let topmost = message
        .header_values("Authentication-Results")
        .filter_map(|v| v.as_text())
        .next();
    match topmost {
        Some(v) if !authserv_id(v).eq_ignore_ascii_case(trusted) => Verdict::Forged(format!(
            "the topmost Authentication-Results is from {}, not {trusted}",
            authserv_id(v)
        )),
        Some(v) if says_dmarc_pass(v) => Verdict::Editor(from.clone()),
        Some(_) => Verdict::Forged(format!(
            "Authentication-Results from {trusted} does not say dmarc=pass"
        )),
        None => Verdict::Forged(format!("no Authentication-Results from {trusted}")),
    }
}

fn authserv_id(value: &str) -> &str {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
}

fn says_dmarc_pass(value: &str) -> bool {
    value.split(';').skip(1).any(|r| {
        r.split_whitespace()
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case("dmarc=pass"))
    })
}
