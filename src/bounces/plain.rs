//! Reports that follow no standard: the prose of sendmail, qmail, exim, Lotus Notes, Verizon,
//! Gmail and Exchange that names the failed recipients in its text, and Amazon SES
//! notifications (JSON). Each recipient gets the paragraph that names it, so that one
//! recipient's reason is never read as another's.

use mail_parser::Message;

use super::report::{address_in, enhanced_status, Failure, Report};

/// The most recipients one report is read for: a report naming more is no single delivery's.
const MAX_NAMED: usize = 100;

/// Whether the report's sender or subject says it is a failure notice.
pub fn looks_like_bounce(msg: &Message<'_>) -> bool {
    let from = msg
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_lowercase();
    let subject = msg.subject().unwrap_or("").to_lowercase();
    [
        "mailer-daemon",
        "postmaster",
        "mail delivery",
        "post_master",
    ]
    .iter()
    .any(|p| from.contains(p))
        || [
            "undeliver",
            "returned mail",
            "failure",
            "delivery status",
            "not delivered",
            "could not be delivered",
            "error",
            "non remis",
            "配信",
        ]
        .iter()
        .any(|p| subject.contains(p))
}

/// The failures of a report that follows no standard: the recipients it names
/// (`X-Failed-Recipients`, `RCPT TO:` lines, addresses in its prose, else the returned
/// message's `To:`), each with the status found near it.
pub fn non_standard(msg: &Message<'_>, prose: &str, text: &str) -> Vec<Failure> {
    let listed: Vec<String> = msg
        .header_raw("X-Failed-Recipients")
        .map(|v| v.split(',').filter_map(address_in).collect())
        .unwrap_or_default();
    if !looks_like_bounce(msg) && listed.is_empty() {
        return Vec::new();
    }
    let own: Vec<String> = [msg.to(), msg.from()]
        .into_iter()
        .flatten()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address().map(str::to_lowercase))
        .collect();
    let mut named = listed;
    if named.is_empty() {
        named = addresses_in_prose(prose, &own);
    }
    if named.is_empty() {
        named.extend(quoted_to(text).filter(|a| !own.contains(a)));
    }
    named.truncate(MAX_NAMED);
    named
        .into_iter()
        .map(|address| {
            let context = paragraph(prose, &address);
            Failure {
                action: "failed".into(),
                status: enhanced_status(&context)
                    .or_else(|| enhanced_status(prose))
                    .unwrap_or_default(),
                diagnostic: context,
                address,
                ..Failure::default()
            }
        })
        .collect()
}

/// The distinct addresses the prose names as recipients (not the report's own sender or
/// addressee, nor an address it tells you to contact).
fn addresses_in_prose(prose: &str, own: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in prose.lines() {
        let lower = line.to_lowercase();
        let about_the_sender = ["from:", "mail from:", "sender:", "reply-to:", "cc:"]
            .iter()
            .any(|h| lower.trim_start().starts_with(h));
        if about_the_sender || lower.contains("contact") || lower.contains("postmaster") {
            continue;
        }
        for word in line.split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '"')) {
            // Text glued before a bracket (`…は、<a@b>`) is not part of the address.
            let word = word.rsplit('<').next().unwrap_or(word);
            let word = word.trim_matches(|c: char| matches!(c, '<' | '>' | ':' | ';' | '.' | '\''));
            let Some(address) = address_in(word) else {
                continue;
            };
            let plausible = address.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.contains('@') && !l.contains('=')
            });
            if plausible && !own.contains(&address) && !out.contains(&address) {
                out.push(address);
            }
            if out.len() >= MAX_NAMED {
                return out;
            }
        }
    }
    out
}

/// The `To:` of the message quoted below the report.
fn quoted_to(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (name, value) = l.trim_start().split_once(':')?;
        if name.eq_ignore_ascii_case("to") {
            value.split(',').find_map(address_in)
        } else {
            None
        }
    })
}

/// The paragraph of `prose` that names `address`: its line and the lines after it, up to a
/// blank line once the reason has begun, or up to the next recipient.
pub fn paragraph(prose: &str, address: &str) -> String {
    if address.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = prose.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.to_lowercase().contains(address))
    else {
        return String::new();
    };
    let mut out = vec![lines[start]];
    for line in lines.iter().skip(start + 1).take(12) {
        let blank = line.trim().is_empty();
        let said_something = out.iter().skip(1).any(|l| !l.trim().is_empty());
        if blank && said_something {
            break;
        }
        let names_another = line.contains('@')
            && !line.to_lowercase().contains(address)
            && line.trim_start().starts_with('<');
        if names_another {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// An Amazon SES notification (JSON, alone or inside an SNS envelope): its bounced or
/// complaining recipients. Lines some relays folded with a trailing `!` are joined first.
pub fn amazon_ses(text: &str, report: &mut Report) {
    let body = text.trim_start();
    if !body.starts_with('{') {
        return;
    }
    let mut json = String::new();
    let mut folded = false;
    for line in body.lines() {
        if line == "--" {
            break;
        }
        let line = if folded {
            line.strip_prefix(' ').unwrap_or(line)
        } else {
            line
        };
        folded = line.ends_with('!');
        json.push_str(line.strip_suffix('!').unwrap_or(line));
    }
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&json) else {
        return;
    };
    if let Some(inner) = v.get("Message").and_then(|m| m.as_str()) {
        match serde_json::from_str(inner) {
            Ok(inner) => v = inner,
            Err(_) => return,
        }
    }
    let text_of = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    match v["notificationType"].as_str() {
        Some("Bounce") => {
            let bounce = &v["bounce"];
            // SES's own words for what it saw: a full mailbox, a message too large.
            let kind = match text_of(bounce, "bounceSubType").as_str() {
                "MailboxFull" => "mailbox full",
                "MessageTooLarge" => "message too large",
                "ContentRejected" | "AttachmentRejected" => "content rejected",
                _ => "",
            };
            let transient = text_of(bounce, "bounceType") == "Transient";
            for r in bounce["bouncedRecipients"].as_array().into_iter().flatten() {
                let Some(address) = address_in(&text_of(r, "emailAddress")) else {
                    continue;
                };
                let diagnostic = text_of(r, "diagnosticCode");
                let mut status = text_of(r, "status");
                if status.is_empty() {
                    status = enhanced_status(&diagnostic).unwrap_or_default();
                }
                if transient && status.starts_with('5') {
                    status.replace_range(..1, "4");
                }
                report.failures.push(Failure {
                    address,
                    action: text_of(r, "action"),
                    status,
                    diagnostic: format!("{diagnostic}\n{kind}"),
                    ..Failure::default()
                });
            }
        }
        Some("Complaint") => {
            let complaint = &v["complaint"];
            let kind = text_of(complaint, "complaintFeedbackType");
            report.complaint = Some(if kind.is_empty() {
                "abuse".into()
            } else {
                kind
            });
            for r in complaint["complainedRecipients"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(address) = address_in(&text_of(r, "emailAddress")) {
                    report.failures.push(Failure {
                        address,
                        ..Failure::default()
                    });
                }
            }
        }
        _ => {}
    }
}
