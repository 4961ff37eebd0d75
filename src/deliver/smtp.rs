//! One SMTP connection (RFC 5321) kept open for many messages, through lettre's async client.
//!
//! We open the TCP socket ourselves with `TCP_NODELAY` (lettre never sets it, and against a
//! nearby server every message then waits ~40 ms on a delayed ACK), hand it to lettre for
//! EHLO, STARTTLS (RFC 3207) and AUTH, and send each message as one pipelined
//! `MAIL FROM`/`RCPT TO`/`DATA` group (RFC 2920) when the server offers PIPELINING, followed by
//! the body and its terminating dot in a single write. The message bytes are prepared by
//! [`crate::message`] so that no line starts with a dot: no dot-stuffing pass is needed here.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::SendError;

/// Where and how to connect, from `smtp.url`.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte.
    pub implicit_tls: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Our name in EHLO.
    pub hello: String,
}

impl Target {
    /// Parses `smtp://[user@]host[:port]` (port 25; STARTTLS when offered) or `smtps://` (465).
    /// The password comes from `TAYORI_SMTP_PASSWORD` (or the URL).
    pub fn parse(url: &str, hello: &str) -> Result<Target, String> {
        let u = url::Url::parse(url).map_err(|e| format!("smtp.url `{url}`: {e}"))?;
        let implicit_tls = match u.scheme() {
            "smtp" => false,
            "smtps" => true,
            s => return Err(format!("smtp.url: unknown scheme `{s}`")),
        };
        let host = u
            .host_str()
            .ok_or_else(|| format!("smtp.url `{url}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let user = (!u.username().is_empty()).then(|| percent_decode(u.username()));
        let password = std::env::var("TAYORI_SMTP_PASSWORD")
            .ok()
            .or_else(|| u.password().map(percent_decode));
        Ok(Target {
            port: u.port().unwrap_or(if implicit_tls { 465 } else { 25 }),
            host,
            implicit_tls,
            user,
            password,
            hello: hello.to_string(),
        })
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Maps lettre's error to ours: 5xx is permanent, everything else (4xx, I/O, timeouts, a
/// dropped connection, an unreadable reply) is worth another try.
pub fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    if e.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

/// An open connection.
pub struct Connection {
    conn: AsyncSmtpConnection,
    pipelining: bool,
}

impl Connection {
    /// Connects, says EHLO, upgrades to TLS when offered, authenticates when configured.
    pub async fn open(t: &Target, timeout: Duration) -> Result<Connection, SendError> {
        let hello = ClientId::Domain(t.hello.clone());
        let tls = || {
            TlsParameters::new(t.host.clone())
                .map_err(|e| SendError::Permanent(format!("TLS setup for {}: {e}", t.host)))
        };
        let mut conn = if t.implicit_tls {
            AsyncSmtpConnection::connect_tokio1(
                (t.host.as_str(), t.port),
                Some(timeout),
                &hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(|e| classify(&e))?
        } else {
            let tcp = tokio::time::timeout(timeout, TcpStream::connect((t.host.as_str(), t.port)))
                .await
                .map_err(|_| {
                    SendError::Transient(format!("connect to {}:{} timed out", t.host, t.port))
                })?
                .map_err(|e| {
                    SendError::Transient(format!("connect to {}:{}: {e}", t.host, t.port))
                })?;
            tcp.set_nodelay(true)
                .map_err(|e| SendError::Transient(format!("TCP_NODELAY: {e}")))?;
            let mut c = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                .await
                .map_err(|e| classify(&e))?;
            if c.can_starttls() {
                c.starttls(tls()?, &hello).await.map_err(|e| classify(&e))?;
            }
            c
        };
        if let (Some(user), Some(pass)) = (&t.user, &t.password) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), pass.clone()),
            )
            .await
            .map_err(|e| classify(&e))?;
        }
        // lettre does not keep the PIPELINING keyword: ask again (a repeated EHLO is allowed,
        // RFC 5321 §4.1.4) and read the keywords ourselves.
        let ehlo = conn
            .command(format!("EHLO {}\r\n", t.hello))
            .await
            .map_err(|e| classify(&e))?;
        let pipelining = ehlo
            .message()
            .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"));
        Ok(Connection { conn, pipelining })
    }

    /// Sends one message to one recipient; `Ok` carries the server's reply to DATA (250).
    pub async fn send(&mut self, from: &str, to: &str, message: &str) -> Result<String, SendError> {
        let group = [
            format!("MAIL FROM:<{from}>\r\n"),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".to_string(),
        ];
        let mut replies = Vec::with_capacity(3);
        if self.pipelining {
            replies.push(self.conn.command(group.concat()).await);
            while replies.len() < 3 && !replies.iter().any(is_broken) {
                replies.push(self.conn.read_response().await);
            }
        } else {
            for cmd in &group {
                let r = self.conn.command(cmd).await;
                let stop = r.is_err();
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        if let Some(Err(e)) = replies.iter().find(|r| is_broken(r)) {
            return Err(SendError::Transient(e.to_string()));
        }
        let refused = replies
            .iter()
            .take(2)
            .find_map(|r| r.as_ref().err())
            .map(classify);
        let data = replies
            .get(2)
            .map(|r| r.as_ref().map(|_| ()).map_err(classify));
        match (refused, data) {
            (None, Some(Ok(()))) => {
                let r = self
                    .conn
                    .command(Data(message))
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(format!(
                    "{} {}",
                    r.code(),
                    r.message().collect::<Vec<_>>().join(" ")
                ))
            }
            (Some(e), Some(Ok(()))) => {
                // The server took DATA although the recipient was refused: end it empty.
                let _ = self.conn.command(".\r\n").await;
                Err(e)
            }
            (refused, data) => {
                let _ = self.conn.command("RSET\r\n").await;
                Err(refused
                    .or(data.and_then(Result::err))
                    .unwrap_or_else(|| SendError::Transient("no reply to DATA".into())))
            }
        }
    }

    /// Says QUIT (best effort).
    pub async fn close(mut self) {
        let _ = self.conn.quit().await;
    }
}

/// A message body and the dot that ends it, written as one piece (lettre formats a command
/// with `Display`: one allocation, one write).
struct Data<'a>(&'a str);

impl std::fmt::Display for Data<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str("\r\n.\r\n")
    }
}

/// An error that is not an SMTP reply: the connection is unusable.
fn is_broken<T>(r: &Result<T, lettre::transport::smtp::Error>) -> bool {
    matches!(r, Err(e) if e.status().is_none())
}
