//! Why a delivery failed, from the status code and the server's own words, and what that means
//! for the address (the table in DESIGN.md, "Bounces and pacing"):
//!
//! | cause | effect |
//! | --- | --- |
//! | the address does not exist (user unknown, no such domain, has moved) | suppress at once |
//! | the reader complained (ARF) | suppress at once |
//! | the reader's side cannot take it now (mailbox full, the reader's own filter, suspended, expired) | soft: 3 in 30 days suppress |
//! | about us (blocked, policy, spam, authentication, TLS, relay, rate, content) | never suppresses; shown |
//! | something else (remote system or network trouble, unknown) | never suppresses; shown |
//! | not a bounce (auto-reply, delivery or delay notice) | ignored |
//!
//! The words win over the status class: au answers `5.0.910` when the reader's filter refused
//! us and `5.0.971` when it blocks us, and a `550 5.1.1` may carry "blocked" — suppressing on
//! the class would drop real clients, or every subscriber on a carrier.

/// Why a recipient's delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// No such user, no such domain, the address has moved: suppress at once.
    AddressGone,
    /// The reader reported the mail as spam: suppress at once.
    Complaint,
    /// Full mailbox, the reader's own filter, a suspended or expired account: soft.
    ReaderSide,
    /// Our sending is refused (blocked, policy, spam, TLS, relay, rate, content): never
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

    /// Whether this cause counts towards the soft limit (3 in 30 days).
    pub fn is_soft(self) -> bool {
        self == Cause::ReaderSide
    }
}

/// Words that put the fault on our side, whatever the status says.
const SENDER_SIDE: &[&str] = &[
    "blocked",
    "block list",
    "blocklist",
    "blacklist",
    "black list",
    "denylist",
    "spamhaus",
    "dnsbl",
    "rbl",
    "spamcop",
    "barracuda",
    "listed at",
    "listed in",
    "reputation",
    "spam",
    "junk",
    "unsolicited",
    "bulk mail",
    "policy",
    "not allowed",
    "prohibited",
    "refused to accept",
    "access denied",
    "relay",
    "relaying",
    "authentication required",
    "authentication failed",
    "sender address rejected",
    "sender verify",
    "sender rejected",
    "sender domain",
    "tls",
    "starttls",
    "encrypt",
    "certificate",
    "dmarc",
    "spf",
    "dkim",
    "reverse dns",
    "reverse lookup",
    "ptr record",
    "rdns",
    "too many connections",
    "too many messages",
    "too many recipients",
    "rate limit",
    "ratelimit",
    "throttl",
    "try again later",
    "temporarily deferred",
    "virus",
    "malware",
    "infected",
    "message too large",
    "message size",
    "size exceeds",
    "too big",
    "content rejected",
    "message content",
    "not accepted here",
    "no relay",
    "5.7.",
    "4.7.",
];

/// Words that say the address does not exist.
const ADDRESS_GONE: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "unknown recipient",
    "recipient unknown",
    "invalid recipient",
    "recipient not found",
    "user not found",
    "mailbox not found",
    "mailbox unavailable",
    "no mailbox",
    "does not exist",
    "doesn't exist",
    "not exist",
    "no longer",
    "address rejected: user",
    "unrouteable address",
    "unknown address",
    "invalid address",
    "bad destination mailbox",
    "account does not exist",
    "not our customer",
    "no such domain",
    "host not found",
    "domain not found",
    "host unknown",
    "unknown domain",
    "name or service not known",
    "nxdomain",
    "no mx",
    "has moved",
    "address has changed",
    "account has been deleted",
    "account is disabled or discontinued",
    "not a valid mailbox",
    "user doesn't have",
    "user doesn't exist",
    "recipient rejected",
    "can't find the recipient",
];

/// Words that say the reader's side cannot take it now.
const READER_SIDE: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "quota",
    "over quota",
    "overquota",
    "insufficient",
    "storage",
    "disk full",
    "exceeded",
    "exceeds",
    "full mailbox",
    "mailbox size limit",
    "suspend",
    "disabled",
    "inactive",
    "deactivated",
    "expired",
    "on hold",
    "frozen",
    "domain filter",
    "filtered",
    "rejected by recipient",
    "recipient's filter",
    "receiving is",
    "does not accept",
    "not accepting",
    "mail receiving",
    "receiving mail at a rate",
    "受信拒否",
    "容量",
];

/// Words of a delay warning: the message is still being tried, nothing failed yet.
const STILL_TRYING: &[&str] = &[
    "has been delayed",
    "will be retried",
    "warning message only",
    "still trying",
    "do not need to resend",
    "delivery delayed",
];

/// Words of a remote system or network failure that outweigh an address-like status code
/// (a local delivery agent that crashed under `5.1.1`, a DNS query that failed).
const REMOTE_TROUBLE: &[&str] = &[
    "procmail",
    "lock failure",
    "error while writing",
    "couldn't create",
    "can't create",
    "cannot create",
    "dns query failed",
    "connection timed out",
    "connection refused",
    "connection reset",
    "network is unreachable",
    "mail loop",
    "loops back",
    "hop count",
    "system error",
    "internal error",
    "local configuration error",
    "timed out",
    "timeout",
    "network",
    "unreachable",
    "mailer error",
    "local error",
    "i/o error",
];

/// docomo answers "550 Unknown user" also when the reader's own filter refused the mail (au
/// has its own code for that, 5.0.910): from docomo it is no proof that the address is gone.
const AMBIGUOUS_UNKNOWN_USER: &[&str] = &["docomo.ne.jp"];

fn from_ambiguous_carrier(address: &str, words: &str) -> bool {
    let domain = address.rsplit('@').next().unwrap_or("");
    AMBIGUOUS_UNKNOWN_USER
        .iter()
        .any(|c| crate::subscribers::in_domain(domain, c) || words.contains(c))
}

/// The cause of one failure to `address`, from its DSN action, enhanced status code and the
/// server's words.
pub fn classify(address: &str, action: &str, status: &str, words: &str) -> Cause {
    let action = action.trim().to_ascii_lowercase();
    if ["delayed", "delivered", "relayed", "expanded"].contains(&action.as_str()) {
        return Cause::NotABounce;
    }
    let w = words.to_lowercase();
    let has = |list: &[&str]| list.iter().any(|p| w.contains(p));
    let code = status.trim();
    // Carriers' own codes first: they say exactly which side refused.
    match code {
        "5.0.910" | "4.0.910" => return Cause::ReaderSide,
        "5.0.971" | "4.0.971" => return Cause::SenderSide,
        _ => {}
    }
    if has(STILL_TRYING) {
        return Cause::NotABounce;
    }
    // About our own address or our sending: never the reader's doing, whatever the class.
    let sender_code =
        ["5.7.", "4.7."].iter().any(|p| code.starts_with(p)) || ["5.1.7", "5.1.8"].contains(&code);
    if sender_code || has(SENDER_SIDE) {
        return Cause::SenderSide;
    }
    if has(REMOTE_TROUBLE) {
        return Cause::Other;
    }
    let gone_code = [
        "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.4.4", "5.1.0", "5.2.1",
    ]
    .contains(&code);
    // Both kinds of words (au: "account is disabled" and "user unknown"): the safer reading.
    if (has(ADDRESS_GONE) || gone_code) && !has(READER_SIDE) {
        if from_ambiguous_carrier(address, &w) && code != "5.1.1" {
            return Cause::ReaderSide;
        }
        return Cause::AddressGone;
    }
    if has(READER_SIDE) || ["5.2.2", "4.2.2", "5.2.0"].contains(&code) {
        return Cause::ReaderSide;
    }
    Cause::Other
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
