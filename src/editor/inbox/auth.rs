//! Who may post by email: a message mailed to the inbox publishes only when its `From` is one of
//! `editor.to` and it is authenticated, by either
//!
//! - **DKIM** (RFC 6376), verified by `mail-auth` against DNS: a passing signature whose `h=`
//!   covers `From`, with no `l=` tag (a signature over part of the body would let anyone append
//!   to it), whose `d=` is aligned with the From domain as DMARC's relaxed alignment says
//!   (RFC 7489 §3.1.1: the same organizational domain, found with the public suffix list); or
//! - **the trusted server's word**: the topmost `Authentication-Results` field (RFC 8601) of the
//!   message is from `editor.trusted_authserv_id` and says `dmarc=pass` (for the From domain,
//!   when it names `header.from`).
//!
//! "Topmost" is the first `Authentication-Results` field of the header, whoever wrote it. A
//! sender can write any field, but only below those the receiving servers add on top (RFC 8601
//! §5: a server adds its field above the message as it got it, and removes fields claiming its
//! own authserv-id). So a field from another authserv-id above the trusted one was added after
//! the trusted server checked the message — by a later hop we were not told to trust, which may
//! have changed the message, or on a path that bypassed the trusted server and so let a forged
//! "trusted" field through (a backup MX): the message is then not vouched for. The office names
//! the last server that checks. `Received` fields are not used to decide: every delivery hop
//! (Dovecot's LMTP, the MX's own) adds one above the results.
//!
//! Only one `From` field with one address, and no `Sender` naming someone else: a message that
//! names several authors, or another sender, is not from an editor.

use std::net::SocketAddr;

use anyhow::Context;
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, MessageAuthenticator};
use mail_parser::{Address, HeaderValue};

mod results;

/// Whether a message mailed to the inbox may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// From an editor and authenticated: the editor's address, lowercased.
    Editor(String),
    /// Not from an editor (or not from exactly one author): leave it, no reply.
    Stranger,
    /// Claims an editor's address but is not authenticated: why, in one line.
    Forged(String),
    /// Claims an editor's address, and a signature of the editor's domain could not be
    /// checked because DNS failed for now: why. Neither taken nor refused — an error is never
    /// a decision — so the message is read again at the next poll.
    Unsure(String),
}

/// The DNS resolver DKIM keys are looked up with (and `doctor`'s): built once.
pub struct Resolver {
    authenticator: MessageAuthenticator,
}

impl Resolver {
    /// The system's resolver, or the one DNS server `TAYORI_RESOLVER=IP:PORT` names (tests
    /// point it at a local one).
    pub fn from_env() -> anyhow::Result<Resolver> {
        Resolver::new(server_from(std::env::var_os("TAYORI_RESOLVER"))?)
    }

    /// The system's resolver (`/etc/resolv.conf`), or one DNS server over UDP and TCP.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Resolver> {
        // The one resolver `doctor` uses too.
        Ok(Resolver {
            authenticator: MessageAuthenticator(crate::doctor::resolver(server)?),
        })
    }
}

/// `TAYORI_RESOLVER`'s value: unset or empty is the system's resolver.
fn server_from(value: Option<std::ffi::OsString>) -> anyhow::Result<Option<SocketAddr>> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = value.to_str().context("TAYORI_RESOLVER is not UTF-8")?;
    let addr = text
        .parse()
        .with_context(|| format!("TAYORI_RESOLVER={text}: not IP:PORT"))?;
    Ok(Some(addr))
}

/// Whether `raw` (the whole message as received) may publish: see the module's rules.
/// `editors` is `editor.to`; without `trusted_authserv_id` only DKIM can authenticate.
pub async fn verdict(
    raw: &[u8],
    editors: &[String],
    trusted_authserv_id: Option<&str>,
    resolver: &Resolver,
) -> Verdict {
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        return Verdict::Stranger;
    };
    let Some(from) = sole_author(&message) else {
        return Verdict::Stranger;
    };
    if !editors.iter().any(|e| e.trim().eq_ignore_ascii_case(&from)) {
        return Verdict::Stranger;
    }
    let Some((_, domain)) = from.rsplit_once('@') else {
        return Verdict::Stranger;
    };
    let vouched = match trusted_authserv_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => trusted_server_says(&message, id, domain),
        None => Err("no editor.trusted_authserv_id".to_string()),
    };
    let why_not_vouched = match vouched {
        Ok(()) => return Verdict::Editor(from),
        Err(why) => why,
    };
    let outputs = resolver.authenticator.verify_dkim(&message).await;
    let why_not_signed = match aligned_signature(&outputs, domain) {
        Ok(()) => return Verdict::Editor(from),
        Err(why) => why,
    };
    if dns_failed_for(&outputs, domain) {
        return Verdict::Unsure(format!(
            "From {from}: its signature could not be checked now: {why_not_signed}"
        ));
    }
    Verdict::Forged(format!(
        "From {from} is not authenticated: DKIM: {why_not_signed}; Authentication-Results: {why_not_vouched}"
    ))
}

/// The one author's address (ASCII-lowercased), if the message has exactly one `From` field
/// naming exactly one address and no `Sender` naming another (RFC 5322 §3.6.2). Only ASCII
/// letters are folded: Unicode lowercasing turns look-alikes into ASCII (the Kelvin sign `K`
/// U+212A becomes `k`), which would make another mailbox an editor's.
fn sole_author(message: &AuthenticatedMessage<'_>) -> Option<String> {
    // Read from the field itself: mail-auth's `from` list is lowercased by Unicode rules.
    let [field] = fields(message, "From")[..] else {
        return None;
    };
    let [from] = &addresses(field)[..] else {
        return None;
    };
    let from = from.clone();
    let senders = fields(message, "Sender");
    match senders.as_slice() {
        [] => Some(from),
        [value] => (addresses(value) == [from.clone()]).then_some(from),
        _ => None,
    }
}

/// The values of the fields called `name`, top to bottom.
fn fields<'x>(message: &AuthenticatedMessage<'x>, name: &str) -> Vec<&'x [u8]> {
    message
        .headers
        .iter()
        .filter(|(n, _)| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
        .collect()
}

/// The addresses of an address-list field's value, ASCII-lowercased.
fn addresses(value: &[u8]) -> Vec<String> {
    let parsed = mail_parser::parsers::MessageStream::new(value).parse_address();
    let list: Vec<&mail_parser::Addr> = match &parsed {
        HeaderValue::Address(Address::List(list)) => list.iter().collect(),
        HeaderValue::Address(Address::Group(groups)) => {
            groups.iter().flat_map(|g| g.addresses.iter()).collect()
        }
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|a| a.address.as_ref().map(|a| a.trim().to_ascii_lowercase()))
        .collect()
}

/// `Ok` when the topmost `Authentication-Results` field is the trusted server's and says
/// `dmarc=pass` for `domain`; else why not.
fn trusted_server_says(
    message: &AuthenticatedMessage<'_>,
    trusted: &str,
    domain: &str,
) -> Result<(), String> {
    let topmost = fields(message, "Authentication-Results")
        .first()
        .map(|v| String::from_utf8_lossy(v))
        .ok_or("none in the message")?;
    let field = results::parse(&topmost).map_err(|e| format!("the topmost is unreadable: {e}"))?;
    if !field.authserv_id.eq_ignore_ascii_case(trusted) {
        return Err(format!(
            "the topmost is from {}, not the trusted {trusted}",
            field.authserv_id
        ));
    }
    let dmarc: Vec<_> = field
        .results
        .iter()
        .filter(|r| r.method == "dmarc")
        .collect();
    if dmarc.is_empty() {
        return Err(format!("{trusted} gives no dmarc result"));
    }
    for r in dmarc {
        if r.result != "pass" {
            return Err(format!("{trusted} says dmarc={}", r.result));
        }
        for (key, value) in &r.props {
            let named = value.rsplit('@').next().unwrap_or(value);
            if key == "header.from" && !named.trim_end_matches('.').eq_ignore_ascii_case(domain) {
                return Err(format!(
                    "{trusted} says dmarc=pass for {value}, not for {domain}"
                ));
            }
        }
    }
    Ok(())
}

/// `Ok` when one signature passed, covers `From`, covers the whole body and is aligned with
/// `domain`; else why each failed.
fn aligned_signature(outputs: &[DkimOutput<'_>], domain: &str) -> Result<(), String> {
    if outputs.is_empty() {
        return Err("no signature".into());
    }
    let mut why = Vec::new();
    for output in outputs {
        let Some(sig) = output.signature() else {
            why.push(result_text(output.result()));
            continue;
        };
        let d = sig.d.trim_end_matches('.').to_ascii_lowercase();
        let problem = if output.result() != &DkimResult::Pass {
            result_text(output.result())
        } else if !sig.h.iter().any(|h| h.trim().eq_ignore_ascii_case("from")) {
            "does not sign From".into()
        } else if sig.l != 0 {
            "signs only part of the body (l=)".into()
        } else if organizational_domain(&d) != organizational_domain(domain) {
            format!("not aligned with {domain}")
        } else {
            return Ok(());
        };
        why.push(format!("d={d}: {problem}"));
    }
    Err(why.join(", "))
}

/// Whether a signature aligned with `domain` met a temporary DNS failure (the editor's own
/// domain's DNS, which a stranger cannot make fail on purpose: a made-up selector there is a
/// plain "no such record").
fn dns_failed_for(outputs: &[DkimOutput<'_>], domain: &str) -> bool {
    outputs.iter().any(|o| {
        matches!(o.result(), DkimResult::TempError(_))
            && o.signature().is_some_and(|sig| {
                let d = sig.d.trim_end_matches('.').to_ascii_lowercase();
                organizational_domain(&d) == organizational_domain(domain)
            })
    })
}

fn result_text(result: &DkimResult) -> String {
    match result {
        DkimResult::Pass => "pass".into(),
        DkimResult::Neutral(e) | DkimResult::Fail(e) | DkimResult::PermError(e) => e.to_string(),
        DkimResult::TempError(e) => format!("DNS lookup failed, transient: {e}"),
        DkimResult::None => "no result".into(),
    }
}

/// RFC 7489 §3.2: the registered domain (one label below the public suffix), or the name
/// itself when it has none (a public suffix, a bare name).
fn organizational_domain(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&domain).unwrap_or(&domain).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> AuthenticatedMessage<'_> {
        AuthenticatedMessage::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn the_organizational_domain_is_one_label_below_the_public_suffix() {
        assert_eq!(organizational_domain("mail.example.jp"), "example.jp");
        assert_eq!(organizational_domain("Example.JP."), "example.jp");
        assert_eq!(organizational_domain("a.b.example.co.jp"), "example.co.jp");
        assert_eq!(organizational_domain("tokyo.jp"), "tokyo.jp");
        assert_ne!(
            organizational_domain("example.co.jp"),
            organizational_domain("other.co.jp")
        );
    }

    #[test]
    fn tayori_resolver_names_one_server_or_none() {
        assert_eq!(server_from(None).unwrap(), None);
        assert_eq!(server_from(Some("".into())).unwrap(), None);
        assert_eq!(
            server_from(Some("127.0.0.1:5353".into())).unwrap(),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert!(server_from(Some("localhost".into()))
            .unwrap_err()
            .to_string()
            .contains("TAYORI_RESOLVER=localhost"));
    }

    #[test]
    fn the_author_is_the_one_address_of_the_one_from_field() {
        let one = "From: Sakura <Sakura@Example.JP>\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(
            sole_author(&parsed(one)).as_deref(),
            Some("sakura@example.jp")
        );
        let two_fields = "From: sakura@example.jp\r\nFrom: evil@example.com\r\n\r\nbody\r\n";
        assert_eq!(sole_author(&parsed(two_fields)), None);
        let two_addresses = "From: sakura@example.jp, evil@example.com\r\n\r\nbody\r\n";
        assert_eq!(sole_author(&parsed(two_addresses)), None);
        let none = "Subject: x\r\n\r\nbody\r\n";
        assert_eq!(sole_author(&parsed(none)), None);
    }

    #[test]
    fn a_unicode_look_alike_that_lowercases_to_ascii_is_not_the_editors_address() {
        // U+212A KELVIN SIGN lowercases to the ASCII `k` under Unicode rules.
        let kelvin = "From: sa\u{212A}ura@example.jp\r\nSubject: x\r\n\r\nbody\r\n";
        let author = sole_author(&parsed(kelvin));
        assert_ne!(author.as_deref(), Some("sakura@example.jp"));
        let sender = "From: sakura@example.jp\r\nSender: sa\u{212A}ura@example.jp\r\n\r\nb\r\n";
        assert_eq!(sole_author(&parsed(sender)), None);
    }

    #[test]
    fn a_sender_naming_someone_else_is_not_the_author_but_the_same_address_is() {
        let other = "From: sakura@example.jp\r\nSender: evil@example.com\r\n\r\nbody\r\n";
        assert_eq!(sole_author(&parsed(other)), None);
        let same = "From: sakura@example.jp\r\nSender: Sakura <SAKURA@example.jp>\r\n\r\nb\r\n";
        assert_eq!(
            sole_author(&parsed(same)).as_deref(),
            Some("sakura@example.jp")
        );
    }

    fn vouched(headers: &str) -> Result<(), String> {
        let raw = format!("{headers}From: sakura@example.jp\r\nSubject: x\r\n\r\nbody\r\n");
        trusted_server_says(&parsed(&raw), "MX.example.jp", "example.jp")
    }

    #[test]
    fn the_trusted_servers_dmarc_pass_on_top_vouches_for_the_message() {
        assert_eq!(
            vouched("Authentication-Results: mx.example.jp; dmarc=pass header.from=example.jp\r\n"),
            Ok(())
        );
        assert_eq!(
            vouched("Authentication-Results: mx.example.jp; spf=pass; dmarc=pass\r\n"),
            Ok(())
        );
        // Fields below the topmost, from anyone, are not read.
        let below = "Received: from mx by imap with LMTP\r\nAuthentication-Results: mx.example.jp; dmarc=pass\r\nAuthentication-Results: evil.example; dmarc=fail\r\nAuthentication-Results: mx.example.jp; dmarc=fail\r\n";
        assert_eq!(vouched(below), Ok(()));
    }

    #[test]
    fn dmarc_fail_a_comment_or_another_domain_from_the_trusted_server_vouches_for_nothing() {
        let e =
            vouched("Authentication-Results: mx.example.jp; dmarc=fail header.from=example.jp\r\n");
        assert!(e.unwrap_err().contains("dmarc=fail"));
        let e = vouched("Authentication-Results: mx.example.jp; dkim=none (dmarc=pass)\r\n");
        assert!(e.unwrap_err().contains("no dmarc result"));
        let e = vouched(
            "Authentication-Results: mx.example.jp; dmarc=pass header.from=evil.example\r\n",
        );
        assert!(e.unwrap_err().contains("evil.example"));
        let e = vouched("Authentication-Results: mx.example.jp; dmarc=pass; dmarc=fail\r\n");
        assert!(e.unwrap_err().contains("dmarc=fail"));
    }

    #[test]
    fn another_servers_field_is_never_believed_and_above_the_trusted_one_voids_it() {
        let e =
            vouched("Authentication-Results: evil.example; dmarc=pass header.from=example.jp\r\n");
        assert!(e
            .unwrap_err()
            .contains("from evil.example, not the trusted"));
        let above = "Authentication-Results: relay.example; dmarc=pass\r\nAuthentication-Results: mx.example.jp; dmarc=pass\r\n";
        assert!(vouched(above)
            .unwrap_err()
            .contains("from relay.example, not the trusted"));
        assert!(vouched("").unwrap_err().contains("none"));
    }
}
