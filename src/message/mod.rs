//! Messages (RFC 5322, MIME per RFC 2045–2049), built once per issue and personalised per
//! recipient by splicing only `To`, `Message-ID`, the unsubscribe link and the greeting.
//!
//! `multipart/alternative` with text/plain and text/html, UTF-8, base64 bodies (Japanese in
//! quoted-printable would triple in size); RFC 2047 encoded `Subject` and display names (lettre's
//! header encoder); `Message-ID` on the sender's domain; `List-Id` (RFC 2919);
//! `List-Unsubscribe` (RFC 2369) with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 8058). Every line ends in CRLF and no line starts with `.`, so the bytes go to SMTP DATA
//! as they are.

use std::fmt::Write as _;
use std::time::SystemTime;

use lettre::message::header::{self, HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};

use crate::config::Config;
use crate::render::email::Rendered;

mod body;
pub mod dkim;
use body::EncodedPart;

/// Why a message could not be built. Always permanent: the same input fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid address `{0}`: {1}")]
    Address(String, String),
    #[error(transparent)]
    Dkim(#[from] dkim::DkimError),
}

/// Who a message goes to, with the personal fields.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub unsubscribe_url: &'a str,
    /// `<…@sender-domain>`, unique per message.
    pub message_id: String,
}

/// The sender's domain (for `Message-ID` and `List-Id`).
pub fn sender_domain(config: &Config) -> String {
    config
        .sender
        .from
        .parse::<Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// An issue's message with the per-recipient parts left open.
#[derive(Debug, Clone)]
pub struct Template {
    /// The sender's address (SMTP envelope `MAIL FROM`).
    pub envelope_from: String,
    common: String,
    boundary: String,
    text: EncodedPart,
    html: EncodedPart,
    dkim: Option<std::sync::Arc<dkim::Signer>>,
    /// Editor mail: the To header of every editor, and no List-Unsubscribe.
    office_to: Option<String>,
}

fn raw_header(headers: &mut Headers, name: &'static str, value: String) {
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        value,
    ));
}

impl Template {
    /// Prepares the message of an issue: headers shared by every recipient, parts with
    /// placeholders.
    pub fn new(
        config: &Config,
        rendered: &Rendered,
        date: SystemTime,
    ) -> Result<Template, MessageError> {
        let parse = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| MessageError::Address(s.to_string(), e.to_string()))
        };
        let from = parse(&config.sender.from)?;
        let domain = from.email.domain().to_string();
        let mut h = Headers::new();
        h.set(header::From::from(Mailboxes::from(from.clone())));
        if let Some(r) = &config.sender.reply_to {
            h.set(header::ReplyTo::from(Mailboxes::from(parse(r)?)));
        }
        h.set(header::Subject::from(crate::content::one_line(
            &rendered.subject,
        )));
        // RFC 5322 §3.3 date in the site's zone (`+0900`), as the reader's clock shows it.
        let local = chrono::DateTime::<chrono::Utc>::from(date).with_timezone(&config.tz());
        raw_header(&mut h, "Date", local.to_rfc2822());
        h.set(header::MIME_VERSION_1_0);
        raw_header(&mut h, "List-Id", format!("<newsletter.{domain}>"));
        raw_header(
            &mut h,
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".into(),
        );
        let boundary = format!(
            "tayori-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        Ok(Template {
            envelope_from: from.email.to_string(),
            common: h.to_string(),
            boundary,
            // MIME text is in canonical form: CRLF line breaks (RFC 2046 §4.1.1).
            dkim: None,
            office_to: None,
            text: EncodedPart::new(&crlf(&rendered.text), false),
            html: EncodedPart::new(&crlf(&rendered.html), true),
        })
    }

    /// Adds `Feedback-ID: <issue>:newsletter:tayori:<sender domain>` (Gmail's feedback loop
    /// groups complaints by it; `newsletter` is the list of `List-Id`, RFC 2919).
    pub fn with_feedback_id(mut self, config: &Config, issue: i64) -> Template {
        let domain = sender_domain(config);
        // The header is ASCII: an internationalised domain in its A-label form.
        let domain = match url::Host::parse(&domain) {
            Ok(url::Host::Domain(d)) => d,
            _ => domain,
        };
        let line = format!("Feedback-ID: {issue}:newsletter:tayori:{domain}\r\n");
        self.common.push_str(&line);
        self
    }

    /// Signs every message with DKIM from now on.
    /// Editor mail (to the office, not a newsletter message): no list headers,
    /// `X-Tayori-Kind: <kind>`, To every editor.
    pub fn for_office(mut self, kind: &str, to: &[String]) -> Result<Template, MessageError> {
        let mut all = Mailboxes::new();
        for a in to {
            let m = a
                .parse::<Mailbox>()
                .map_err(|e| MessageError::Address(a.clone(), e.to_string()))?;
            all.push(m);
        }
        let mut h = Headers::new();
        h.set(header::To::from(all));
        self.office_to = Some(h.to_string());
        let kept: Vec<&str> = self
            .common
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("List-Id:") && !l.starts_with("List-Unsubscribe-Post:"))
            .collect();
        self.common = format!("{}X-Tayori-Kind: {kind}\r\n", kept.concat());
        Ok(self)
    }

    /// Editor mail that answers one of the editors' messages: `In-Reply-To` and `References`
    /// (RFC 5322 §3.6.4), so her mail app shows it in the thread of her message. Only
    /// well-formed message ids are kept (`<…>`, visible ASCII): they came from outside.
    pub fn in_reply_to(mut self, message_id: &str, references: &str) -> Template {
        let ok = |id: &&str| {
            id.len() > 2
                && id.len() <= 250
                && id.starts_with('<')
                && id.ends_with('>')
                && id[1..id.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        };
        let Some(id) = Some(message_id.trim()).filter(ok) else {
            return self;
        };
        let mut refs: Vec<&str> = references.split_whitespace().filter(ok).collect();
        if refs.last() != Some(&id) {
            refs.push(id);
        }
        // The newest references are the ones that matter: keep the first and the last 20.
        if refs.len() > 21 {
            refs.drain(1..refs.len() - 20);
        }
        self.common.push_str(&format!(
            "In-Reply-To: {id}\r\nReferences: {}\r\n",
            refs.join("\r\n ")
        ));
        self
    }

    pub fn with_dkim(mut self, signer: dkim::Signer) -> Template {
        self.dkim = Some(std::sync::Arc::new(signer));
        self
    }

    /// The complete message for one recipient.
    /// The text is 7-bit ASCII with CRLF line ends.
    pub fn render(&self, to: &Recipient) -> Result<String, MessageError> {
        let address = to
            .email
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MessageError::Address(to.email.to_string(), e.to_string())
            })?;
        let name = crate::content::one_line(to.name);
        let mut h = Headers::new();
        if self.office_to.is_none() {
            h.set(header::To::from(Mailboxes::from(Mailbox::new(
                (!name.is_empty()).then_some(name),
                address,
            ))));
        }
        raw_header(&mut h, "Message-ID", to.message_id.clone());
        if self.office_to.is_none() {
            raw_header(
                &mut h,
                "List-Unsubscribe",
                format!("<{}>", to.unsubscribe_url),
            );
        }
        let mut out =
            String::with_capacity(self.common.len() + self.text.len() + self.html.len() + 1024);
        out.push_str(&self.common);
        if let Some(to) = &self.office_to {
            out.push_str(to);
        }
        let personal = h.to_string();
        // Only these header lines change per recipient; lettre folds with a leading space and
        // base64 has no '.', so no line starts with a dot and SMTP needs nothing stuffed.
        debug_assert!(!personal.contains("\r\n."));
        out.push_str(&personal);
        let b = &self.boundary;
        let _ = write!(
            out,
            "Content-Type: multipart/alternative;\r\n boundary=\"{b}\"\r\n\r\n"
        );
        for (ct, part) in [("text/plain", &self.text), ("text/html", &self.html)] {
            let _ = write!(
                out,
                "--{b}\r\nContent-Type: {ct}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            );
            part.write(to.name, to.unsubscribe_url, &mut out);
        }
        let _ = write!(out, "--{b}--\r\n");
        if let Some(signer) = &self.dkim {
            let signature = signer.sign(out.as_bytes()).map_err(MessageError::Dkim)?;
            out.insert_str(0, &signature);
        }
        Ok(out)
    }
}

fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Builds one complete message (the `preview` command's `.eml`).
pub fn build(
    config: &Config,
    rendered: &Rendered,
    to: &Recipient,
    date: SystemTime,
) -> Result<Vec<u8>, MessageError> {
    Ok(Template::new(config, rendered, date)?
        .render(to)?
        .into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_names_her_message_and_drops_ids_that_could_inject_headers() {
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tayori.yaml"),
        )
        .unwrap();
        let config = crate::config::parse(&yaml, std::path::Path::new("tayori.yaml")).unwrap();
        let rendered = Rendered {
            subject: "Re: 今週の記事です".into(),
            preheader: String::new(),
            html: "<p>受付</p>".into(),
            text: "受付".into(),
        };
        let template = Template::new(&config, &rendered, SystemTime::now())
            .unwrap()
            .for_office("receipt", &["sakura@example.jp".into()])
            .unwrap();
        let answer = template.clone().in_reply_to(
            "<word-1@example.jp>",
            "<a@example.jp> bad\r\nBcc: x@evil.example <b@example.jp>",
        );
        let eml = answer
            .render(&Recipient {
                email: "sakura@example.jp",
                name: "",
                unsubscribe_url: "",
                message_id: "<r@example.jp>".into(),
            })
            .unwrap();
        assert!(
            eml.contains("In-Reply-To: <word-1@example.jp>\r\n"),
            "{eml}"
        );
        assert!(
            eml.contains(
                "References: <a@example.jp>\r\n <b@example.jp>\r\n <word-1@example.jp>\r\n"
            ),
            "{eml}"
        );
        assert!(!eml.contains("Bcc:"), "{eml}");
        let forged = template.in_reply_to("<x@y>\r\nBcc: z@evil.example", "");
        assert!(!format!("{forged:?}").contains("In-Reply-To"));
    }
}
