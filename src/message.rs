//! One subscriber's message (RFC 5322, MIME per RFC 2045–2049), built with lettre's builder.
//!
//! `multipart/alternative` with text/plain and text/html, UTF-8, base64 bodies (Japanese in
//! quoted-printable would triple in size); RFC 2047 encoded `Subject` and display names;
//! `Message-ID` on the sender's domain; `List-Id` (RFC 2919); `List-Unsubscribe` (RFC 2369)
//! with `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).

use std::time::SystemTime;

use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::config::Config;
use crate::render::email::{personalize, Rendered};

/// Why a message could not be built. Always permanent: the same input fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid address `{0}`: {1}")]
    Address(String, String),
    #[error("cannot build the message: {0}")]
    Build(String),
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

macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        #[derive(Debug, Clone)]
        struct $ty(String);
        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ListId, "List-Id");
text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");

/// The sender's domain (for `Message-ID` and `List-Id`).
pub fn sender_domain(config: &Config) -> String {
    config
        .sender
        .from
        .parse::<Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Builds the complete message for one recipient, as bytes ready for SMTP DATA or a `.eml`.
pub fn build(
    config: &Config,
    rendered: &Rendered,
    to: &Recipient,
    date: SystemTime,
) -> Result<Vec<u8>, MessageError> {
    let from: Mailbox =
        config
            .sender
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MessageError::Address(config.sender.from.clone(), e.to_string())
            })?;
    let to_box = Mailbox::new(
        Some(crate::content::one_line(to.name)).filter(|n| !n.is_empty()),
        to.email
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MessageError::Address(to.email.to_string(), e.to_string())
            })?,
    );
    let domain = sender_domain(config);
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to_box)
        .subject(crate::content::one_line(&rendered.subject))
        .date(date)
        .message_id(Some(to.message_id.clone()))
        .header(ListId(format!("<newsletter.{domain}>")))
        .header(ListUnsubscribe(format!("<{}>", to.unsubscribe_url)))
        .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
    if let Some(r) = &config.sender.reply_to {
        let r: Mailbox = r.parse().map_err(|e: lettre::address::AddressError| {
            MessageError::Address(r.clone(), e.to_string())
        })?;
        builder = builder.reply_to(r);
    }
    let part = |ct: ContentType, body: String| -> Result<SinglePart, MessageError> {
        let body = Body::new_with_encoding(body, ContentTransferEncoding::Base64)
            .map_err(|_| MessageError::Build("body cannot be base64".into()))?;
        Ok(SinglePart::builder().header(ct).body(body))
    };
    let text = personalize(&rendered.text, to.name, to.unsubscribe_url, false);
    let html = personalize(&rendered.html, to.name, to.unsubscribe_url, true);
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text)?)
                .singlepart(part(ContentType::TEXT_HTML, html)?),
        )
        .map_err(|e| MessageError::Build(e.to_string()))?;
    Ok(message.formatted())
}
