//! `smtp.url`: where mail leaves — `smtp://[user@]host[:port]` (port 25, STARTTLS when the
//! server offers it, RFC 3207) or `smtps://` (port 465, TLS from the first byte, RFC 8314).

use std::fmt;
use std::str::FromStr;

use crate::text::redacted_url;

/// `smtp.url`, parsed. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte.
    pub implicit_tls: bool,
    pub user: Option<String>,
    /// The password written in the URL; `TAYORI_SMTP_PASSWORD` overrides it ([`Self::password`]).
    url_password: Option<String>,
}

/// Why `smtp.url` cannot be used. Permanent: the configuration must change. The URL in it
/// never shows a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    #[error("smtp.url: `{url}`: {reason}")]
    Invalid { url: String, reason: String },
    #[error("smtp.url: `{url}` must start with smtp:// or smtps://, not {scheme}://")]
    Scheme { url: String, scheme: String },
    #[error("smtp.url: `{0}` has no host")]
    NoHost(String),
}

impl FromStr for SmtpUrl {
    type Err = SmtpUrlError;

    fn from_str(url: &str) -> Result<SmtpUrl, SmtpUrlError> {
        let shown = redacted_url(url);
        let u = url::Url::parse(url).map_err(|e| SmtpUrlError::Invalid {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let implicit_tls = match u.scheme() {
            "smtp" => false,
            "smtps" => true,
            s => {
                return Err(SmtpUrlError::Scheme {
                    url: shown,
                    scheme: s.to_string(),
                })
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| SmtpUrlError::NoHost(shown.clone()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(SmtpUrl {
            port: u.port().unwrap_or(if implicit_tls { 465 } else { 25 }),
            host,
            implicit_tls,
            user: (!u.username().is_empty()).then(|| percent_decode(u.username())),
            url_password: u.password().map(percent_decode),
        })
    }
}

impl SmtpUrl {
    /// The password: `TAYORI_SMTP_PASSWORD`, else the one in the URL.
    pub fn password(&self) -> Option<String> {
        std::env::var("TAYORI_SMTP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| self.url_password.clone())
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        write!(f, "{scheme}://{user}{}:{}", self.host, self.port)
    }
}

/// Userinfo is percent-encoded (RFC 3986 §2.1); unlike a form, `+` stays a plus.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ports_tls_and_a_percent_encoded_user() {
        let u: SmtpUrl = "smtps://news%40example.jp:p%2Bw@mail.example.jp"
            .parse()
            .unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.implicit_tls),
            ("mail.example.jp", 465, true)
        );
        assert_eq!(u.user.as_deref(), Some("news@example.jp"));
        assert_eq!(u.url_password.as_deref(), Some("p+w"));
        assert!(!format!("{u:?}").contains("p+w"));
        let plain: SmtpUrl = "smtp://[::1]:2525".parse().unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.implicit_tls),
            ("::1", 2525, false)
        );
    }

    #[test]
    fn refuses_other_schemes_without_showing_the_password() {
        let e = "http://u:secret@host".parse::<SmtpUrl>().unwrap_err();
        assert!(e.to_string().contains("smtp:// or smtps://"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(matches!(
            "smtp://".parse::<SmtpUrl>(),
            Err(SmtpUrlError::NoHost(_) | SmtpUrlError::Invalid { .. })
        ));
    }
}
