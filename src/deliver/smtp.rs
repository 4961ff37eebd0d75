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
use lettre::transport::smtp::response::{Response, Severity};
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
    /// Where `smtp.url` says, saying `hello` in EHLO; the password from `TAYORI_SMTP_PASSWORD`
    /// (or the URL).
    pub fn new(url: &crate::config::SmtpUrl, hello: &str) -> Target {
        Target {
            host: url.host.clone(),
            port: url.port,
            implicit_tls: url.implicit_tls,
            user: url.user.clone(),
            password: url.password(),
            hello: hello.to_string(),
        }
    }
}

/// Maps lettre's error at RCPT or at the end of DATA (`stage`): 5xx fails this recipient;
/// everything else (4xx, I/O, timeouts, a dropped connection, an unreadable reply) is worth
/// another try.
pub fn send_error(e: &lettre::transport::smtp::Error, stage: crate::bounces::Stage) -> SendError {
    let text = reply(e);
    if e.is_permanent() {
        SendError::Permanent { reply: text, stage }
    } else {
        SendError::Transient(text)
    }
}

/// A failure before or around a message that is not about its recipient: the server's.
fn server_fault(what: String, e: &lettre::transport::smtp::Error) -> SendError {
    SendError::Server {
        cause: format!("{what}: {}", reply(e)),
        permanent: e.is_permanent(),
    }
}

/// The server's reply as it was said (`550 5.7.1 sender rejected`), else lettre's words.
fn reply(e: &lettre::transport::smtp::Error) -> String {
    let s = e.to_string();
    match (e.status(), s.split_once("): ")) {
        (Some(code), Some((_, rest))) => format!("{code} {rest}"),
        _ => s,
    }
}

/// How long connecting (TCP, greeting, TLS) may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP (with `TCP_NODELAY`) and the greeting and EHLO, in clear text so far.
async fn connect_plain(
    t: &Target,
    timeout: Duration,
    hello: &ClientId,
    server: &str,
) -> Result<AsyncSmtpConnection, SendError> {
    let unreachable = |why: String| SendError::Server {
        cause: format!("cannot connect to the SMTP server {server}: {why}"),
        permanent: false,
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((t.host.as_str(), t.port)))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", timeout.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|e| unreachable(format!("TCP_NODELAY: {e}")))?;
    let greet = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello);
    tokio::time::timeout(timeout, greet)
        .await
        .map_err(|_| unreachable(format!("no greeting within {}s", timeout.as_secs())))?
        .map_err(|e| server_fault(format!("the SMTP server {server} refused EHLO"), &e))
}

/// AUTH (PLAIN or LOGIN, RFC 4954) — only over TLS: a server without STARTTLS never sees the
/// password.
async fn login(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    pass: &str,
    server: &str,
) -> Result<(), SendError> {
    if !conn.is_encrypted() {
        return Err(SendError::Server {
            cause: format!(
                "the SMTP server {server} offers no STARTTLS, and a password is never sent in clear text (use smtps:// or a server with STARTTLS)"
            ),
            permanent: true,
        });
    }
    let credentials = Credentials::new(user.to_string(), pass.to_string());
    conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
        .await
        .map_err(|e| {
            let what = format!("the SMTP server {server} refused the login of `{user}`");
            match server_fault(what, &e) {
                // No mechanism in common, or a 5xx: no retry mends that; a 454 might pass.
                SendError::Server { cause, .. } if !e.is_transient() => SendError::Server {
                    cause,
                    permanent: true,
                },
                other => other,
            }
        })?;
    Ok(())
}

/// An open connection.
pub struct Connection {
    conn: AsyncSmtpConnection,
    pipelining: bool,
    /// The recipient whose envelope went out with the last message's content, its replies not
    /// read yet: they are read by the `send` for it, within its own time limit, so that a
    /// server slow to answer them never turns the message before, already accepted, into a
    /// failure to be sent again.
    unread: Option<String>,
    /// The server's replies fell out of step with our commands: QUIT would be read as content
    /// or its reply never come.
    out_of_step: bool,
    /// `host:port`, for messages.
    server: String,
}

impl Connection {
    /// Connects, says EHLO, upgrades to TLS when offered, authenticates when configured — and
    /// only over TLS: a server without STARTTLS never sees the password.
    pub async fn open(t: &Target, timeout: Duration) -> Result<Connection, SendError> {
        let timeout = timeout.min(CONNECT_TIMEOUT);
        let server = format!("{}:{}", t.host, t.port);
        let hello = ClientId::Domain(t.hello.clone());
        let tls = || {
            TlsParameters::new(t.host.clone()).map_err(|e| SendError::Server {
                cause: format!("TLS setup for {server}: {e}"),
                permanent: true,
            })
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
            .map_err(|e| {
                server_fault(
                    format!("cannot connect with TLS to the SMTP server {server}"),
                    &e,
                )
            })?
        } else {
            let mut c = connect_plain(t, timeout, &hello, &server).await?;
            if c.can_starttls() {
                c.starttls(tls()?, &hello)
                    .await
                    .map_err(|e| server_fault(format!("STARTTLS with {server} failed"), &e))?;
            }
            c
        };
        if let (Some(user), Some(pass)) = (&t.user, &t.password) {
            login(&mut conn, user, pass, &server).await?;
        }
        // lettre does not keep the PIPELINING keyword: ask again (a repeated EHLO is allowed,
        // RFC 5321 §4.1.4) and read the keywords ourselves.
        let ehlo = conn
            .command(format!("EHLO {}\r\n", t.hello))
            .await
            .map_err(|e| server_fault(format!("the SMTP server {server} refused EHLO"), &e))?;
        let pipelining = ehlo
            .message()
            .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"));
        tracing::debug!(%server, pipelining, tls = conn.is_encrypted(), "connected");
        Ok(Connection {
            conn,
            pipelining,
            unread: None,
            out_of_step: false,
            server,
        })
    }

    /// Sends one message to one recipient; `Ok` carries the server's reply to DATA (250).
    /// A refusal at MAIL FROM or of the DATA command is the server's ([`SendError::Server`]);
    /// one at RCPT or at the end of DATA is the recipient's.
    ///
    /// `next` (sender, recipient) is the envelope of the message to follow: with PIPELINING its
    /// MAIL, RCPT and DATA go out in one write with this message's content (RFC 2920 §3.1 lets
    /// content be followed by the next transaction's commands), and when the server answers
    /// its DATA with 354 the transaction stays open for the next `send` to that recipient —
    /// one round trip per message instead of two. Those replies are read by that `send`, not
    /// this one: this message's result is its reply to the dot alone. Nothing is delivered
    /// before that `send` writes the content; whatever went wrong with `next` is left to it,
    /// and it starts over.
    pub async fn send(
        &mut self,
        from: &str,
        to: &str,
        message: &str,
        next: Option<(&str, &str)>,
    ) -> Result<String, SendError> {
        // Whether the server waits for this message's content already.
        let ready = match self.unread.take() {
            // Whatever went wrong with the envelope sent ahead, `begin` starts it over —
            // unless the replies fell out of step: the server may be reading content.
            Some(ahead) if ahead == to => match self.settle(from, Vec::new()).await {
                Ok(()) => true,
                Err(e) if self.out_of_step => return Err(e),
                Err(_) => false,
            },
            // Cannot happen (a worker sends the message it looked ahead to next); were it to,
            // only a new connection ends that transaction without delivering anything.
            Some(_) => return Err(SendError::Transient("another transaction is open".into())),
            None => false,
        };
        if !ready {
            self.begin(from, to).await?;
        }
        let next = next.filter(|_| self.pipelining);
        let content = Data {
            message,
            next: next.map(|(from, to)| envelope(from, to)),
        };
        let result = match self.conn.command(content).await {
            // Only a 2xx acknowledges a message; any other positive reply (a 354) answers some
            // other command: the server's replies are out of step, and nothing read on this
            // connection can be trusted any more.
            Ok(r) if r.code().severity != Severity::PositiveCompletion => {
                self.out_of_step = true;
                return Err(out_of_step("the end of the message", &r));
            }
            Ok(r) => Ok(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) if e.status().is_none() => return Err(SendError::Transient(e.to_string())),
            Err(e) => Err(send_error(&e, crate::bounces::Stage::Data)),
        };
        self.unread = next.map(|(_, to)| to.to_string());
        result
    }

    /// MAIL FROM, RCPT TO and DATA, in one group when the server offers PIPELINING; `Ok` when
    /// the server waits for the content.
    async fn begin(&mut self, from: &str, to: &str) -> Result<(), SendError> {
        let mut replies = Vec::with_capacity(3);
        if self.pipelining {
            replies.push(self.conn.command(envelope(from, to)).await);
        } else {
            for cmd in [
                format!("MAIL FROM:<{from}>\r\n"),
                format!("RCPT TO:<{to}>\r\n"),
                "DATA\r\n".to_string(),
            ] {
                let r = self.conn.command(cmd).await;
                let stop = r.is_err();
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        self.settle(from, replies).await
    }

    /// Reads what is left of the three replies to MAIL, RCPT and DATA (pipelined: `replies`
    /// holds those read so far) and ends a transaction that cannot go on, so that the
    /// connection is ready for the next one.
    async fn settle(
        &mut self,
        from: &str,
        mut replies: Vec<Result<Response, lettre::transport::smtp::Error>>,
    ) -> Result<(), SendError> {
        while self.pipelining && replies.len() < 3 && !replies.iter().any(is_broken) {
            replies.push(self.conn.read_response().await);
        }
        if let Some(Err(e)) = replies.iter().find(|r| is_broken(r)) {
            return Err(SendError::Transient(e.to_string()));
        }
        // MAIL and RCPT are accepted with a 2xx, DATA with a 3xx (354): a positive reply of
        // the other kind answers another command.
        let expected = [
            ("MAIL FROM", Severity::PositiveCompletion),
            ("RCPT TO", Severity::PositiveCompletion),
            ("DATA", Severity::PositiveIntermediate),
        ];
        for (reply, (command, severity)) in replies.iter().zip(expected) {
            if let Ok(r) = reply {
                if r.code().severity != severity {
                    self.out_of_step = true;
                    return Err(out_of_step(command, r));
                }
            }
        }
        if let Some(Err(e)) = replies.first() {
            let _ = self.conn.command("RSET\r\n").await;
            let what = format!(
                "the SMTP server {} refused the sender <{from}> at MAIL FROM",
                self.server
            );
            return Err(server_fault(what, e));
        }
        let refused = replies
            .get(1)
            .and_then(|r| r.as_ref().err())
            .map(|e| send_error(e, crate::bounces::Stage::Rcpt));
        let data = replies.get(2).map(|r| r.as_ref().map(|_| ()));
        match (refused, data) {
            (None, Some(Ok(()))) => Ok(()),
            (Some(e), Some(Ok(()))) => {
                // The server took DATA although the recipient was refused: end it empty.
                let _ = self.conn.command(".\r\n").await;
                Err(e)
            }
            (Some(e), _) => {
                let _ = self.conn.command("RSET\r\n").await;
                Err(e)
            }
            (None, Some(Err(e))) => {
                let _ = self.conn.command("RSET\r\n").await;
                Err(server_fault(
                    format!("the SMTP server {} refused DATA", self.server),
                    e,
                ))
            }
            (None, None) => Err(SendError::Transient("no reply to DATA".into())),
        }
    }

    /// Says QUIT (best effort) — unless a transaction was begun ahead: the server would
    /// read QUIT as content, so the connection is dropped, which ends the transaction undelivered
    /// (RFC 5321 §4.1.1.4).
    pub async fn close(mut self) {
        if self.unread.is_none() && !self.out_of_step {
            // A server that never answers QUIT does not hold up the run.
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.conn.quit()).await;
        }
    }
}

/// MAIL FROM, RCPT TO and DATA of one message, as one group (RFC 2920).
fn envelope(from: &str, to: &str) -> String {
    format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n")
}

/// A message body and the dot that ends it, and the next message's envelope if any, written
/// as one piece (lettre formats a command with `Display`: one allocation, one write).
struct Data<'a> {
    message: &'a str,
    next: Option<String>,
}

impl std::fmt::Display for Data<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)?;
        f.write_str("\r\n.\r\n")?;
        f.write_str(self.next.as_deref().unwrap_or(""))
    }
}

/// A positive reply that does not answer `command`: the server's replies are out of step with
/// our commands (RFC 2920 §3.1 has them in order), and the connection must be dropped.
fn out_of_step(command: &str, r: &Response) -> SendError {
    let said = r.message().collect::<Vec<_>>().join(" ");
    SendError::Transient(format!(
        "the server answered {command} with `{} {said}`: its replies are out of step",
        r.code()
    ))
}

/// An error that is not an SMTP reply: the connection is unusable.
fn is_broken<T>(r: &Result<T, lettre::transport::smtp::Error>) -> bool {
    matches!(r, Err(e) if e.status().is_none())
}
