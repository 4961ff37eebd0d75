//! The verdict on one failed delivery — why it failed, from the status code, the SMTP stage it
//! was refused at and the server's own words — and what that means for the address. This is
//! the one place that decides; the store only records a verdict and applies it.
//!
//! | cause | effect |
//! | --- | --- |
//! | the address does not exist (user unknown, no such domain, has moved) | suppress at once |
//! | the reader complained (ARF, RFC 5965) | suppress at once |
//! | the reader's side cannot take it now (mailbox full, the reader's own filter, suspended) | soft: 3 in 30 days suppress |
//! | about us (blocked, policy, spam, authentication, TLS, relay, rate, size) | never suppresses; shown |
//! | something else (remote system or network trouble, unknown) | never suppresses; shown |
//! | not a bounce (auto-reply, delivery or delay notice) | ignored |
//!
//! The words win over the status class: au answers `5.0.910` when the reader's filter refused
//! us, a `550 5.1.1` may carry "blocked", exim says "unknown user" under `5.7.1`. Three rules
//! keep a real reader from being dropped: "user unknown" said at the end of DATA is a content
//! filter (the server took the recipient at RCPT), a temporary status (4.x.x, RFC 3463) never
//! suppresses at once, and words about us outweigh "user unknown" next to them.

use chrono::TimeDelta;

use super::words::*;

/// Soft bounces (the reader's side) that suppress an address within [`SOFT_WINDOW`].
pub const SOFT_LIMIT: i64 = 3;
/// The window soft bounces are counted in.
pub const SOFT_WINDOW: TimeDelta = TimeDelta::days(30);

/// Why a recipient's delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// No such user, no such domain, the address has moved: suppress at once.
    AddressGone,
    /// The reader reported the mail as spam: suppress at once.
    Complaint,
    /// Full mailbox, the reader's own filter, a suspended account, a temporary refusal: soft.
    ReaderSide,
    /// Our sending is refused (blocked, policy, spam, TLS, relay, rate, size): never
    /// suppresses; the operator must look.
    SenderSide,
    /// Remote system or network trouble, or a reason nobody can tell: never suppresses.
    Other,
    /// An auto-reply or a delivery or delay notice: nothing failed.
    NotABounce,
}

impl Cause {
    /// Whether this cause suppresses the address at once.
    pub fn suppresses(self) -> bool {
        matches!(self, Cause::AddressGone | Cause::Complaint)
    }

    /// Whether this cause counts towards the soft limit ([`SOFT_LIMIT`] in [`SOFT_WINDOW`]).
    pub fn is_soft(self) -> bool {
        self == Cause::ReaderSide
    }

    /// Whether this cause counts in an issue's bounce rate (what carriers count).
    pub fn counts_in_rate(self) -> bool {
        matches!(self, Cause::AddressGone | Cause::ReaderSide)
    }

    /// The cause as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::AddressGone => "address gone",
            Cause::Complaint => "complaint",
            Cause::ReaderSide => "reader side",
            Cause::SenderSide => "sender side",
            Cause::Other => "other",
            Cause::NotABounce => "not a bounce",
        }
    }

    /// The stored causes that count in the bounce rate, for SQL `IN (…)`.
    pub const RATE_CAUSES: [&'static str; 2] = ["address gone", "reader side"];

    /// Why the address is suppressed at once, as `status` shows it; `None` when it is not.
    pub fn suppression_reason(self, status: &str, diagnostic: &str) -> Option<String> {
        match self {
            Cause::AddressGone => {
                let line = diagnostic
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let line = line.trim();
                // The server's reply usually carries its status: say it once.
                Some(if !status.is_empty() && line.contains(status) {
                    format!("bounced: {line}")
                } else {
                    format!("bounced: {status} {line}").trim().to_string()
                })
            }
            Cause::Complaint => Some("complained".to_string()),
            _ => None,
        }
    }
}

/// The one rule on suppressing: whether a verdict on an address suppresses it, and why (as
/// `status` shows it). An address gone or a complaint suppresses at once; the reader's side
/// once `recent` — that address's bounces of this cause in the last [`SOFT_WINDOW`], this one
/// included — reaches [`SOFT_LIMIT`]; nothing else ever does. The store counts and records.
pub fn suppression(cause: Cause, status: &str, diagnostic: &str, recent: i64) -> Option<String> {
    match cause.suppression_reason(status, diagnostic) {
        Some(reason) => Some(reason),
        None if cause.is_soft() && recent >= SOFT_LIMIT => Some(format!(
            "bounced: {recent} soft bounces in {} days",
            SOFT_WINDOW.num_days()
        )),
        None => None,
    }
}

/// The SMTP stage a server refused at (RFC 5321): a refusal at RCPT is about the address, one
/// at the end of DATA about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Connecting, greeting, EHLO/HELO or MAIL FROM: about us.
    BeforeRecipient,
    /// `RCPT TO`.
    Rcpt,
    /// The end of `DATA`: the server took the recipient, then refused the message.
    Data,
    /// The report does not say.
    #[default]
    Unknown,
}

/// The stage a server's words say it refused at (Postfix "in reply to end of DATA command",
/// exim "after RCPT TO", sendmail "while talking to …: >>> DATA").
pub fn stage_in(words: &str) -> Stage {
    let w = words.to_lowercase();
    let said = |s: &str| {
        [
            format!("in reply to {s}"),
            format!("after {s}"),
            format!(">>> {s}"),
            format!("in reply to end of {s}"),
            format!("after end of {s}"),
        ]
        .iter()
        .any(|p| w.contains(p.as_str()))
    };
    if said("data") || w.contains("end of data") {
        Stage::Data
    } else if said("rcpt") {
        Stage::Rcpt
    } else if said("mail from") || said("helo") || said("ehlo") || w.contains("initial greeting") {
        Stage::BeforeRecipient
    } else {
        Stage::Unknown
    }
}

/// Words next to "user unknown" that make it about us (a block list rejecting our domain).
const STRONGLY_ABOUT_US: &[&str] = &[
    "spamhaus",
    "blocked using",
    "blacklist",
    "block list",
    "blocklist",
    "listed in",
    "listed at",
    "reputation",
    "sender address rejected",
    "spf",
    "dmarc",
    "dnsbl",
];

/// docomo answers "550 Unknown user" also when the reader's own filter refused the mail (au has
/// its own code for that, 5.0.910): from docomo it is no proof that the address is gone.
const AMBIGUOUS_UNKNOWN_USER: &[&str] = &["docomo.ne.jp"];

fn from_ambiguous_carrier(address: &str, words: &str) -> bool {
    let domain = address.rsplit('@').next().unwrap_or("");
    AMBIGUOUS_UNKNOWN_USER
        .iter()
        .any(|c| crate::subscribers::in_domain(domain, c) || words.contains(c))
}

/// What one failure says, as [`classify`] reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Said<'a> {
    /// The failed address.
    pub address: &'a str,
    /// DSN `Action` (`failed`, `delayed`…), empty when unknown.
    pub action: &'a str,
    /// The enhanced status code (`5.1.1`), empty when unknown.
    pub status: &'a str,
    /// The stage the server refused at.
    pub stage: Stage,
    /// The server's words.
    pub words: &'a str,
}

/// The cause of one failure to `address`, from its DSN action, enhanced status code and the
/// server's words (compatibility form of [`verdict`] for a stage nobody knows).
pub fn classify(address: &str, action: &str, status: &str, words: &str) -> Cause {
    verdict(&Said {
        address,
        action,
        status,
        stage: stage_in(words),
        words,
    })
}

/// The verdict on a 5xx a server answered us at `stage` (RCPT or the end of DATA), read like
/// a bounce report's.
pub fn smtp_refusal(address: &str, reply: &str, stage: Stage) -> Cause {
    let status = super::enhanced_status(reply).unwrap_or_default();
    verdict(&Said {
        address,
        action: "failed",
        status: &status,
        stage,
        words: reply,
    })
}

/// The verdict on one failure.
pub fn verdict(said: &Said<'_>) -> Cause {
    let action = said.action.trim().to_ascii_lowercase();
    if ["delayed", "delivered", "relayed", "expanded"].contains(&action.as_str()) {
        return Cause::NotABounce;
    }
    let w = said.words.to_lowercase();
    let code = said.status.trim();
    if code.starts_with("2.") {
        return Cause::NotABounce;
    }
    // Carriers' own codes first: they say exactly which side refused.
    match code {
        "5.0.910" | "4.0.910" => return Cause::ReaderSide,
        "5.0.971" | "4.0.971" => return Cause::SenderSide,
        _ => {}
    }
    if has(&w, STILL_TRYING) {
        return Cause::NotABounce;
    }
    let cause = by_words(&w, code, said.stage)
        .or_else(|| by_status(code))
        .unwrap_or(Cause::Other);
    let cause = match cause {
        Cause::AddressGone if from_ambiguous_carrier(said.address, &w) && code != "5.1.1" => {
            Cause::ReaderSide
        }
        c => c,
    };
    // A temporary refusal (4.x.x, or a 4xx reply with no status) never suppresses at once.
    let temporary = code.starts_with("4.") || (code.is_empty() && reply_code(&w).starts_with('4'));
    if temporary && cause.suppresses() {
        return Cause::ReaderSide;
    }
    cause
}

fn has(words: &str, list: &[&str]) -> bool {
    list.iter().any(|p| words.contains(p))
}

/// Whether a report's prose says the reader's side (full, suspended, filtered): next to "user
/// unknown" in a report about one address (au writes both), the safer reading.
pub fn says_reader_side(prose: &str) -> bool {
    let w = prose.to_lowercase();
    has(&w, MAILBOX_FULL) || has(&w, SUSPENDED) || has(&w, FILTERED)
}

/// Whether a report's words call its failure temporary.
pub fn says_temporary(words: &str) -> bool {
    has(&words.to_lowercase(), TEMPORARY)
}

/// The first three-digit SMTP reply code in the words (`550`), empty when none.
fn reply_code(words: &str) -> &str {
    words
        .split(|c: char| !c.is_ascii_digit())
        .find(|d| d.len() == 3 && matches!(d.as_bytes()[0], b'4' | b'5'))
        .unwrap_or("")
}

/// The cause the words give, tried in an order that puts the specific before the general.
fn by_words(w: &str, code: &str, stage: Stage) -> Option<Cause> {
    if has(w, LOCAL_AGENT) {
        return Some(Cause::Other);
    }
    // au refuses what its reader's filter rejects with an empty address: "550 : User unknown".
    if w.contains("550 : user unknown") {
        return Some(Cause::ReaderSide);
    }
    if has(w, MAILBOX_FULL) {
        return Some(Cause::ReaderSide);
    }
    if has(w, TOO_BIG) {
        return Some(Cause::SenderSide);
    }
    if has(w, SUSPENDED) {
        return Some(Cause::ReaderSide);
    }
    if has(w, HAS_MOVED) {
        return Some(Cause::AddressGone);
    }
    if has(w, NO_RELAY) {
        return Some(Cause::SenderSide);
    }
    if has(w, USER_UNKNOWN) {
        if has(w, STRONGLY_ABOUT_US) {
            return Some(Cause::SenderSide);
        }
        return Some(match stage {
            // Refused after the server took the recipient: a filter on the content.
            Stage::Data => Cause::ReaderSide,
            Stage::BeforeRecipient => Cause::SenderSide,
            Stage::Rcpt | Stage::Unknown => Cause::AddressGone,
        });
    }
    if has(w, FILTERED) {
        return Some(Cause::ReaderSide);
    }
    if has(w, SENDER_REJECTED) {
        return Some(Cause::SenderSide);
    }
    if has(w, REMOTE_TROUBLE) {
        return Some(Cause::Other);
    }
    if has(w, HOST_UNKNOWN) {
        return Some(Cause::AddressGone);
    }
    if has(w, ABOUT_US) || stage == Stage::BeforeRecipient {
        return Some(Cause::SenderSide);
    }
    // Postfix's bare "Recipient address rejected." at RCPT: no such recipient.
    if stage == Stage::Rcpt && w.contains("recipient address rejected") {
        return Some(Cause::AddressGone);
    }
    // A gone status refused at the end of DATA: the content, not the address.
    if stage == Stage::Data && by_status(code) == Some(Cause::AddressGone) {
        return Some(Cause::ReaderSide);
    }
    None
}

/// The cause an enhanced status code gives (RFC 3463) when the words give none.
fn by_status(code: &str) -> Option<Cause> {
    let gone = [
        "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.4.4",
    ];
    if gone.contains(&code) {
        return Some(Cause::AddressGone);
    }
    let reader = [
        "5.2.0", "5.2.1", "5.2.2", "5.1.4", "5.2.4", "4.2.2", "4.2.1",
    ];
    if reader.contains(&code) {
        return Some(Cause::ReaderSide);
    }
    let about_us = ["5.7.", "4.7.", "5.6.", "4.6.", "5.2.3", "5.3.4"];
    if about_us.iter().any(|p| code.starts_with(p)) || ["5.1.7", "5.1.8"].contains(&code) {
        return Some(Cause::SenderSide);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: Stage, status: &str, words: &str) -> Cause {
        verdict(&Said {
            address: "a@x.jp",
            action: "failed",
            status,
            stage,
            words,
        })
    }

    #[test]
    fn the_words_decide_before_the_status_class() {
        let a = "a@x.jp";
        assert_eq!(
            classify(a, "failed", "5.1.1", "550 5.1.1 <a@x.jp>: User unknown"),
            Cause::AddressGone
        );
        assert_eq!(classify(a, "failed", "5.0.910", ""), Cause::ReaderSide);
        assert_eq!(classify(a, "failed", "5.0.971", ""), Cause::SenderSide);
        assert_eq!(
            classify(
                a,
                "failed",
                "5.7.1",
                "550 5.7.1 Service unavailable; client host blocked using Spamhaus"
            ),
            Cause::SenderSide
        );
        assert_eq!(
            classify(a, "failed", "5.2.2", "552 Mailbox full"),
            Cause::ReaderSide
        );
        assert_eq!(
            classify(a, "delayed", "4.4.1", "connection timed out"),
            Cause::NotABounce
        );
        assert_eq!(
            classify(a, "failed", "5.0.0", "something odd"),
            Cause::Other
        );
        // docomo says "Unknown user" for its readers' filters too.
        let d = "reader@docomo.ne.jp";
        assert_eq!(
            classify(d, "failed", "5.0.0", "550 Unknown user reader@docomo.ne.jp"),
            Cause::ReaderSide
        );
        assert_eq!(
            classify(a, "failed", "5.1.8", "553 5.1.8 sender's address domain"),
            Cause::SenderSide
        );
        assert!(!Cause::SenderSide.suppresses() && Cause::AddressGone.suppresses());
    }

    #[test]
    fn user_unknown_at_the_end_of_data_is_a_filter_and_at_rcpt_a_missing_mailbox() {
        let words = "550 5.1.1 <a@x.jp>... User unknown";
        assert_eq!(at(Stage::Data, "5.1.1", words), Cause::ReaderSide);
        assert_eq!(at(Stage::Rcpt, "5.1.1", words), Cause::AddressGone);
        assert_eq!(
            stage_in("550 Unknown user (in reply to end of DATA command)"),
            Stage::Data
        );
        assert_eq!(
            stage_in("SMTP error from remote mail server after RCPT TO:<a@x.jp>"),
            Stage::Rcpt
        );
        // exim's "unknown user" under 5.7.1 at RCPT is still a missing mailbox.
        assert_eq!(
            at(Stage::Rcpt, "5.7.1", "550 5.7.1 Unknown user"),
            Cause::AddressGone
        );
    }

    #[test]
    fn a_temporary_status_never_suppresses_at_once() {
        let dns = "DNS Error: DNS type 'mx' lookup of x.jp responded with code NXDOMAIN";
        assert!(!at(Stage::Unknown, "4.0.0", dns).suppresses());
        // Google's resolver saying NXDOMAIN is no proof either (Sisimai: a network error).
        assert!(!at(Stage::Unknown, "5.0.0", dns).suppresses());
        assert_eq!(
            at(Stage::Rcpt, "", "450 4.1.1 <a@x.jp>: User unknown"),
            Cause::ReaderSide
        );
        assert_eq!(at(Stage::Rcpt, "", "450 User unknown"), Cause::ReaderSide);
        assert_eq!(
            at(Stage::Unknown, "5.1.2", "Host or domain name not found"),
            Cause::AddressGone
        );
        assert_eq!(
            at(Stage::Unknown, "4.1.2", "Host or domain name not found"),
            Cause::ReaderSide
        );
    }

    #[test]
    fn block_lists_next_to_user_unknown_are_about_us() {
        assert_eq!(
            at(
                Stage::Rcpt,
                "5.1.1",
                "550 5.1.1 user unknown; your IP is listed in Spamhaus"
            ),
            Cause::SenderSide
        );
    }
}
