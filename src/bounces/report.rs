//! Reading a bounce report with `mail-parser`: the recipients that failed, with the DSN
//! `Action`, `Status` and `Diagnostic-Code` of each (RFC 3464, RFC 6533), or the complaint
//! (RFC 5965 `message/feedback-report`). Reports that follow no standard — au/EZweb, docomo,
//! Gmail's plain text, Exchange's prose — still name the recipient (`X-Failed-Recipients`, an
//! address in angle brackets, the returned message's `To:`) and an SMTP reply in their text;
//! those are read as well as they can be.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::classify::{stage_in, verdict, Said};
use super::Cause;

/// One recipient a report says failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// The address as the report gives it, lower-cased.
    pub address: String,
    /// DSN `Action` (`failed`, `delayed`…), empty when the report has none.
    pub action: String,
    /// The enhanced status code (`5.1.1`), from the DSN or found in the text.
    pub status: String,
    /// The server's words for this recipient: the DSN's `Diagnostic-Code`, or the lines of a
    /// non-standard report around the address.
    pub diagnostic: String,
    /// The report's prose, up to the returned message: what a person would read.
    pub prose: String,
    /// The DSN's `Remote-MTA`: which server refused (a carrier's, say).
    pub remote_mta: String,
    /// The paragraph of the report's prose that names this address (Postfix and exim write
    /// the server's reply and the SMTP stage there).
    pub context: String,
}

impl Failure {
    /// Why it failed: from the status and the server's words for this recipient, else from
    /// the paragraph that names it, else from the report's prose.
    pub fn cause(&self) -> Cause {
        let stage = stage_in(&format!("{}\n{}", self.diagnostic, self.context));
        // The server's own code in its reply is more precise than a relay's `5.0.0`.
        let said_code = enhanced_status(&self.diagnostic).filter(|c| {
            let mut parts = c.split('.').skip(1);
            parts.all(|p| p != "0")
        });
        let status = said_code.as_deref().unwrap_or(&self.status);
        let said = |words: &str| {
            verdict(&Said {
                address: &self.address,
                action: &self.action,
                status,
                stage,
                words,
            })
        };
        let words = format!("{}\n{}", self.diagnostic, self.remote_mta);
        let mut cause = said(&words);
        for more in [&self.context, &self.prose] {
            if cause != Cause::Other || more.trim().is_empty() {
                break;
            }
            cause = said(&format!("{words}\n{more}"));
        }
        // A report that calls the failure temporary never suppresses at once.
        let temporary = [&words, &self.context, &self.prose]
            .iter()
            .any(|w| super::classify::says_temporary(w));
        if temporary && cause.suppresses() {
            return Cause::ReaderSide;
        }
        cause
    }
}

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub failures: Vec<Failure>,
    /// `Feedback-Type` of a complaint (`abuse`…), when the report is one.
    pub complaint: Option<String>,
    /// An auto-reply (out of office), not a bounce.
    pub auto_reply: bool,
    /// The Message-ID of the returned message, when quoted: it names the delivery.
    pub original_message_id: Option<String>,
    /// The report's own Message-ID: it is read once.
    pub message_id: Option<String>,
    /// Where the report was addressed (`Delivered-To`, `X-Original-To`, `To`…): a VERP
    /// address `local+<tag>@domain` names the delivery.
    pub envelope_to: Vec<String>,
    /// The `Return-Path` of the returned original, where the report quotes it: feedback loops
    /// send their complaints to an address of their own, and this still names the delivery.
    pub returned_from: Vec<String>,
}

impl Report {
    /// Every VERP tag the report carries, in the order they are to be trusted: the address it
    /// came back to first, then the returned original's `Return-Path`.
    pub fn verp_tags(&self) -> impl Iterator<Item = &str> {
        self.envelope_to
            .iter()
            .chain(&self.returned_from)
            .filter_map(|a| {
                let local = a.split('@').next()?;
                local.split_once('+').map(|(_, tag)| tag)
            })
    }
}

/// The cause a report gives for the delivery to `address`: its own failure's, never another
/// recipient's. A report that names one address only may name it after a forward (the VERP tag
/// says which delivery it is about), so that one counts; a report listing several recipients,
/// none of them `address`, says nothing about it. `None` when the report says nothing about it.
pub fn cause_for(report: &Report, address: &str) -> Option<Cause> {
    let mut named: Vec<&str> = report.failures.iter().map(|f| f.address.as_str()).collect();
    named.sort_unstable();
    named.dedup();
    let about_it = named.len() <= 1 || named.contains(&address);
    if let Some(kind) = &report.complaint {
        // An authentication-failure report (DMARC, RFC 6591) is about our signatures, not
        // the reader's wish; "not-spam" is the reader's wish to keep getting it.
        let cause = match kind.as_str() {
            "auth-failure" => Cause::SenderSide,
            "not-spam" => Cause::NotABounce,
            _ => Cause::Complaint,
        };
        return about_it.then_some(cause);
    }
    if report.auto_reply {
        return Some(Cause::NotABounce);
    }
    let failure = failure_for(report, address)?;
    match failure.cause() {
        Cause::AddressGone
            if named.len() <= 1 && super::classify::says_reader_side(&failure.prose) =>
        {
            Some(Cause::ReaderSide)
        }
        cause => Some(cause),
    }
}

/// The failure a report gives for `address`: its own, or the only one of a report that names
/// one address (a forward).
pub fn failure_for<'a>(report: &'a Report, address: &str) -> Option<&'a Failure> {
    let own = report.failures.iter().find(|f| f.address == address);
    own.or_else(|| {
        let first = report.failures.first()?;
        let one = report.failures.iter().all(|f| f.address == first.address);
        one.then_some(first)
    })
}

/// The headers that say where a report was delivered, most trusted first.
const ENVELOPE_HEADERS: &[&str] = &[
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "to",
];

/// How much of a report is parsed. What a report says comes first (RFC 6522: the prose, then
/// the `message/delivery-status` or `message/feedback-report`, then the original); a real
/// report is a few KiB, and the cap bounds the memory a crafted one can take (a header of
/// millions of fields).
pub const MAX_PARSED_BYTES: usize = 1024 * 1024;

/// Reads a report (its first [`MAX_PARSED_BYTES`]); `None` when the bytes are not a message
/// at all.
pub fn parse(bytes: &[u8]) -> Option<Report> {
    let bytes = &bytes[..bytes.len().min(MAX_PARSED_BYTES)];
    let msg = MessageParser::default().parse(bytes)?;
    let mut report = Report {
        message_id: msg.message_id().map(|m| format!("<{m}>")),
        envelope_to: ENVELOPE_HEADERS
            .iter()
            .flat_map(|h| {
                msg.headers_raw()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(h))
                    .flat_map(|(_, v)| v.split(',').filter_map(address_in))
                    .take(16)
                    .collect::<Vec<_>>()
            })
            .collect(),
        ..Report::default()
    };
    let mut text = all_text(&msg);
    if text.trim().is_empty() {
        // A broken MIME header (a boundary on a line of its own) hides every part: read the
        // body as the text it is.
        text = raw_body(bytes);
    }
    let mut is_dsn = false;
    for part in msg.parts.iter() {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        if ct.ctype().eq_ignore_ascii_case("message") {
            match sub.as_str() {
                "delivery-status" | "global-delivery-status" => {
                    report.failures.extend(delivery_status(part_bytes(part)));
                    is_dsn = true;
                }
                "feedback-report" => feedback_report(part_bytes(part), &mut report),
                _ => {}
            }
        }
        if let PartType::Message(inner) = &part.body {
            returned_original(inner, &mut report);
        }
    }
    report.returned_from.extend(quoted_return_paths(&text));
    let subject = msg.subject().unwrap_or("").to_lowercase();
    // Hotmail's complaints are no ARF: a mail from its staff quoting the original.
    if report.complaint.is_none() && subject.contains("complaint about message from") {
        report.complaint = Some("abuse".into());
    }
    if report.failures.is_empty() && report.complaint.is_none() {
        super::plain::amazon_ses(&text, &mut report);
    }
    let prose = prose_of(&text);
    if report.failures.is_empty() && report.complaint.is_none() {
        report.failures = super::plain::non_standard(&msg, &prose, &text);
    }
    for f in &mut report.failures {
        f.context = super::plain::paragraph(&prose, &f.address);
        f.prose = format!("{subject}\n{prose}");
    }
    report.auto_reply = !is_dsn
        && report.complaint.is_none()
        && is_auto_reply(&msg)
        && !super::plain::looks_like_bounce(&msg);
    Some(report)
}

/// The bytes after the header, as text.
fn raw_body(bytes: &[u8]) -> String {
    let at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[at..]).into_owned()
}

/// The complaint of an RFC 5965 `message/feedback-report` part: its type and every recipient
/// it names.
fn feedback_report(body: &[u8], report: &mut Report) {
    let fields = fields(body);
    report.complaint = Some(
        field(&fields, "feedback-type")
            .unwrap_or("abuse")
            .trim()
            .to_ascii_lowercase(),
    );
    for (k, v) in &fields {
        if k == "original-rcpt-to" || k == "redacted-address" {
            if let Some(address) = address_in(v) {
                report.failures.push(Failure {
                    address,
                    ..Failure::default()
                });
            }
        }
    }
}

/// What the returned original says: its Message-ID, its `Return-Path` (our VERP address), and
/// for a complaint that names nobody, the recipient in its headers.
fn returned_original(inner: &Message<'_>, report: &mut Report) {
    report.original_message_id = report
        .original_message_id
        .take()
        .or_else(|| inner.message_id().map(|m| format!("<{m}>")));
    report.returned_from.extend(
        inner
            .headers_raw()
            .filter(|(k, _)| k.eq_ignore_ascii_case("return-path"))
            .filter_map(|(_, v)| address_in(v))
            .take(4),
    );
    if report.complaint.is_some() && report.failures.is_empty() {
        let named = inner
            .header_raw("X-HmXmrOriginalRecipient")
            .and_then(address_in)
            .or_else(|| {
                let to = inner.to()?.first()?.address()?;
                Some(to.to_lowercase())
            });
        if let Some(address) = named {
            report.failures.push(Failure {
                address,
                ..Failure::default()
            });
        }
    }
}

/// The `Return-Path:` lines of an original quoted in the report's text (a
/// `text/rfc822-headers` part, or a plain-text report that copies the message below).
fn quoted_return_paths(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.trim_start().split_once(':')?;
            if name.eq_ignore_ascii_case("return-path") {
                address_in(value)
            } else {
                None
            }
        })
        .take(16)
        .collect()
}

/// The raw bytes of a part's body, however mail-parser typed it.
fn part_bytes<'a>(part: &'a mail_parser::MessagePart<'a>) -> &'a [u8] {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
        PartType::Binary(b) | PartType::InlineBinary(b) => b,
        PartType::Message(m) => m.raw_message(),
        PartType::Multipart(_) => &[],
    }
}

/// The header-like fields of one block, unfolded (RFC 5322 syntax, by mail-parser).
fn fields(block: &[u8]) -> Vec<(String, String)> {
    let mut bytes = block.to_vec();
    bytes.extend_from_slice(b"\r\n\r\n");
    MessageParser::default()
        .parse_headers(&bytes)
        .map(|m| {
            m.headers_raw()
                .map(|(k, v)| (k.to_ascii_lowercase(), unfold(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn unfold(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The per-recipient groups of a `message/delivery-status` body (the first group is the
/// per-message one).
fn delivery_status(body: &[u8]) -> Vec<Failure> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut out = Vec::new();
    for group in text.split("\n\n").filter(|g| !g.trim().is_empty()) {
        let f = fields(group.as_bytes());
        let Some(rcpt) = field(&f, "final-recipient").or(field(&f, "original-recipient")) else {
            continue;
        };
        let Some(address) = address_in(rcpt) else {
            continue;
        };
        out.push(Failure {
            address,
            action: field(&f, "action")
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase(),
            status: field(&f, "status")
                .and_then(enhanced_status)
                .unwrap_or_default(),
            diagnostic: field(&f, "diagnostic-code").unwrap_or("").to_string(),
            remote_mta: field(&f, "remote-mta").unwrap_or("").to_string(),
            ..Failure::default()
        });
    }
    out
}

/// The first enhanced status code (`5.1.1`) in a text: class, subject and detail standing
/// alone (not inside a version number or an IP address).
pub fn enhanced_status(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    (0..b.len()).find_map(|i| {
        let class = b[i];
        if !matches!(class, b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
            return None;
        }
        if i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
            return None;
        }
        let s = digits(i + 2);
        if !(1..=3).contains(&s) || b.get(i + 2 + s) != Some(&b'.') {
            return None;
        }
        let d = digits(i + 3 + s);
        let end = i + 3 + s + d;
        let clean = b.get(end).is_none_or(|c| !c.is_ascii_digit() && *c != b'.');
        // All ASCII digits and dots: the slice is on character boundaries.
        ((1..=3).contains(&d) && clean).then(|| text[i..end].to_string())
    })
}

/// The address in `rfc822; a@b`, `Name <a@b>` or a bare `a@b`, lower-cased.
pub(super) fn address_in(value: &str) -> Option<String> {
    let v = value.rsplit(';').next().unwrap_or(value);
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if b > a => &v[a + 1..b],
        _ => v,
    };
    let v = v.trim();
    let v = v.strip_prefix("mailto:").unwrap_or(v);
    (v.contains('@') && !v.contains(char::is_whitespace)).then(|| v.to_lowercase())
}

/// Every text part, decoded, one after the other (the words a person would read).
pub(super) fn all_text(msg: &Message<'_>) -> String {
    let mut out = String::new();
    for part in msg.parts.iter() {
        if let PartType::Text(t) = &part.body {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

/// The prose of a report: its text up to where the returned message's headers begin.
pub(super) fn prose_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let l = line.trim_start();
        let quoted_header = [
            "Received:",
            "Return-Path:",
            "Message-ID:",
            "Message-Id:",
            "DKIM-Signature:",
            "MIME-Version:",
            "Mime-Version:",
        ]
        .iter()
        .any(|h| l.starts_with(h));
        if quoted_header {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_auto_reply(msg: &Message<'_>) -> bool {
    let auto = msg
        .header_raw("Auto-Submitted")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("auto-replied"));
    let subject = msg.subject().unwrap_or("").to_lowercase();
    auto || [
        "out of office",
        "auto:",
        "autoreply",
        "auto-reply",
        "自動応答",
        "不在",
    ]
    .iter()
    .any(|p| subject.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_enhanced_status_codes_only_where_they_stand_alone() {
        assert_eq!(
            enhanced_status("550 5.1.1 <a@x>: unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("version 1.5.1.2 of x, then 4.2.2").as_deref(),
            Some("4.2.2")
        );
        assert_eq!(enhanced_status("nothing here"), None);
    }

    #[test]
    fn reads_a_standard_dsn() {
        let eml = b"From: MAILER-DAEMON@mx.example\r\nTo: news@example.jp\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; Gone@Example.JP\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.jp>: Recipient address rejected: User unknown\r\n\r\n--b--\r\n";
        let r = parse(eml).unwrap();
        assert_eq!(r.failures.len(), 1);
        let f = &r.failures[0];
        assert_eq!(
            (f.address.as_str(), f.action.as_str(), f.status.as_str()),
            ("gone@example.jp", "failed", "5.1.1")
        );
        assert!(f.diagnostic.contains("User unknown"));
    }

    #[test]
    fn a_notice_of_temporary_failure_never_reads_as_an_address_gone() {
        let eml = "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nTo: bounces+1xab@example.jp\r\nX-Failed-Recipients: reader@example.jp\r\nSubject: Delivery Status Notification (Failure)\r\n\r\nDelivery to the following recipient failed:\r\n\r\n     reader@example.jp\r\n\r\nTechnical details of temporary failure:\r\nThe error that the other server returned was: 550 5.1.1 user unknown\r\n";
        let r = parse(eml.as_bytes()).unwrap();
        assert_eq!(cause_for(&r, "reader@example.jp"), Some(Cause::ReaderSide));
        let permanent = eml.replace("temporary failure", "permanent failure");
        let r = parse(permanent.as_bytes()).unwrap();
        assert_eq!(cause_for(&r, "reader@example.jp"), Some(Cause::AddressGone));
    }

    #[test]
    fn a_report_listing_several_recipients_gives_each_its_own_cause_only() {
        let eml = b"From: MAILER-DAEMON@mx.example\r\nTo: bounces+1xab@example.jp\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; gone@example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\nFinal-Recipient: rfc822; full@example.jp\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\r\n--b--\r\n";
        let r = parse(eml).unwrap();
        assert_eq!(cause_for(&r, "gone@example.jp"), Some(Cause::AddressGone));
        assert_eq!(cause_for(&r, "full@example.jp"), Some(Cause::ReaderSide));
        assert_eq!(cause_for(&r, "other@example.jp"), None);
    }
}
