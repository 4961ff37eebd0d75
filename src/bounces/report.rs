//! Reading a bounce report with `mail-parser`: the recipients that failed, with the DSN
//! `Action`, `Status` and `Diagnostic-Code` of each (RFC 3464, RFC 6533), or the complaint
//! (RFC 5965 `message/feedback-report`). Reports that follow no standard — au/EZweb, docomo,
//! Gmail's plain text, Exchange's prose — still name the recipient (`X-Failed-Recipients`, an
//! address in angle brackets, the returned message's `To:`) and an SMTP reply in their text;
//! those are read as well as they can be.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

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
}

impl Failure {
    /// Why it failed: from the status and the server's words for this recipient, else from
    /// the report's prose.
    pub fn cause(&self) -> crate::bounces::Cause {
        use crate::bounces::{classify, Cause};
        let words = format!("{}\n{}", self.diagnostic, self.remote_mta);
        let by_words = classify(&self.address, &self.action, &self.status, &words);
        if by_words != Cause::Other || self.prose.trim().is_empty() {
            return by_words;
        }
        classify(&self.address, &self.action, &self.status, &self.prose)
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
    /// Where the report was addressed (`To`, `Delivered-To`, `X-Original-To`…): a VERP
    /// address `local+<tag>@domain` names the delivery.
    pub envelope_to: Vec<String>,
}

impl Report {
    /// The VERP tag the report was sent back to, if any.
    pub fn verp_tag(&self) -> Option<&str> {
        self.envelope_to.iter().find_map(|a| {
            let local = a.split('@').next()?;
            local.split_once('+').map(|(_, tag)| tag)
        })
    }
}

/// Reads a report; `None` when the bytes are not a message at all.
pub fn parse(bytes: &[u8]) -> Option<Report> {
    let msg = MessageParser::default().parse(bytes)?;
    let mut report = Report {
        auto_reply: is_auto_reply(&msg),
        message_id: msg.message_id().map(|m| format!("<{m}>")),
        envelope_to: msg
            .headers_raw()
            .filter(|(k, _)| {
                [
                    "to",
                    "delivered-to",
                    "x-original-to",
                    "envelope-to",
                    "x-envelope-to",
                ]
                .contains(&k.to_ascii_lowercase().as_str())
            })
            .flat_map(|(_, v)| v.split(',').filter_map(address_in).collect::<Vec<_>>())
            .collect(),
        ..Report::default()
    };
    let text = all_text(&msg);
    for part in msg.parts.iter() {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        if !ct.ctype().eq_ignore_ascii_case("message") {
            continue;
        }
        match sub.as_str() {
            "delivery-status" | "global-delivery-status" => {
                report.failures.extend(delivery_status(part_bytes(part)));
                // A DSN is itself "auto-replied" (RFC 3834 §5; Postfix says so), but it is a
                // bounce, not a vacation message.
                report.auto_reply = false;
            }
            "feedback-report" => {
                let fields = fields(part_bytes(part));
                report.complaint = Some(
                    field(&fields, "feedback-type")
                        .unwrap_or("abuse")
                        .trim()
                        .to_ascii_lowercase(),
                );
                if let Some(rcpt) = field(&fields, "original-rcpt-to") {
                    report.failures.push(Failure {
                        address: address_in(rcpt).unwrap_or_default(),
                        ..Failure::default()
                    });
                }
            }
            _ => {}
        }
        if let PartType::Message(inner) = &part.body {
            report.original_message_id = report
                .original_message_id
                .or_else(|| inner.message_id().map(|m| format!("<{m}>")));
            if report.complaint.is_some() && report.failures.iter().all(|f| f.address.is_empty()) {
                if let Some(to) = inner.to().and_then(|t| t.first()).and_then(|a| a.address()) {
                    report.failures.retain(|f| !f.address.is_empty());
                    report.failures.push(Failure {
                        address: to.to_lowercase(),
                        ..Failure::default()
                    });
                }
            }
        }
    }
    let prose = prose_of(&text);
    for f in &mut report.failures {
        f.prose = prose.clone();
    }
    if report.failures.is_empty() && report.complaint.is_none() {
        report.failures = non_standard(&msg, &text);
    }
    Some(report)
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
            prose: String::new(),
            remote_mta: field(&f, "remote-mta").unwrap_or("").to_string(),
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
fn address_in(value: &str) -> Option<String> {
    let v = value.rsplit(';').next().unwrap_or(value);
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if b > a => &v[a + 1..b],
        _ => v,
    };
    let v = v.trim();
    (v.contains('@') && !v.contains(char::is_whitespace)).then(|| v.to_lowercase())
}

/// The lines of `prose` around the first mention of `address` (where servers put the reason).
fn around(prose: &str, address: &str) -> String {
    let lines: Vec<&str> = prose.lines().collect();
    let lower: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
    match lower.iter().position(|l| l.contains(address)) {
        Some(i) => lines[i..(i + 4).min(lines.len())].join("\n"),
        None => String::new(),
    }
}

/// Every text part, decoded, one after the other (the words a person would read).
fn all_text(msg: &Message<'_>) -> String {
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
fn prose_of(text: &str) -> String {
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

/// A report that follows no standard: the recipient from `X-Failed-Recipients`, an address in
/// angle brackets in the text, or the returned message's `To:`; the status from the text.
fn non_standard(msg: &Message<'_>, text: &str) -> Vec<Failure> {
    let from = msg
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_lowercase();
    let subject = msg.subject().unwrap_or("").to_lowercase();
    let looks_like_bounce = ["mailer-daemon", "postmaster", "mail delivery"]
        .iter()
        .any(|p| from.contains(p))
        || [
            "undeliver",
            "returned mail",
            "failure",
            "delivery status",
            "not delivered",
            "error",
        ]
        .iter()
        .any(|p| subject.contains(p));
    let listed: Vec<String> = msg
        .header_raw("X-Failed-Recipients")
        .map(|v| v.split(',').filter_map(address_in).collect())
        .unwrap_or_default();
    let own = msg
        .to()
        .and_then(|t| t.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_lowercase();
    let bracketed = text
        .split('<')
        .skip(1)
        .filter_map(|s| s.split('>').next())
        .filter_map(address_in)
        .find(|a| *a != own && *a != from);
    let quoted_to = text.lines().find_map(|l| {
        let l = l.trim_start();
        l.strip_prefix("To:")
            .or_else(|| l.strip_prefix("to:"))
            .and_then(|v| v.split(',').find_map(address_in))
    });
    let address = listed
        .first()
        .cloned()
        .or(bracketed)
        .or(quoted_to.filter(|a| *a != own));
    match address {
        Some(address) if looks_like_bounce || !listed.is_empty() => {
            let prose = prose_of(text);
            vec![Failure {
                action: "failed".into(),
                status: enhanced_status(&prose).unwrap_or_default(),
                diagnostic: around(&prose, &address),
                prose: format!("{subject}\n{prose}"),
                remote_mta: String::new(),
                address,
            }]
        }
        _ => Vec::new(),
    }
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
}
