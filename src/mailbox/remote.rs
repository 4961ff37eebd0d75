//! Mailboxes on a mail server: IMAP (RFC 9051, `async-imap`; IDLE, RFC 2177) and POP3
//! (RFC 1939, `async-pop`), over TLS (rustls with the system's roots; `SSL_CERT_FILE` names
//! others).
//!
//! `imaps://user@host[:993]/FOLDER` reads the unseen messages of the folder (`INBOX` when none is
//! named) without marking them (`BODY.PEEK[]`); a message its consumer is done with is then
//! flagged `\Seen` (or deleted and expunged). `pop3s://user@host[:995]` reads every message;
//! POP3 has no flags, so a message done with is left there (its consumer remembers it) or
//! deleted. Plain `imap://` and `pop3://` are accepted only for a server on this machine
//! (checked in [`crate::config::MailboxUrl`]).

use std::sync::Arc;
use std::time::Duration;

use async_pop::response::types::DataType;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

pub use crate::config::RemoteMailbox as Remote;

/// The password for `r`: the environment variable `env` (`TAYORI_BOUNCE_PASSWORD`,
/// `TAYORI_INBOX_PASSWORD`), else the one in the URL.
fn password(r: &Remote, env: &str) -> Result<String, String> {
    std::env::var(env)
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| r.password.clone())
        .ok_or_else(|| format!("no password for {} (set {env})", r.name()))
}

/// One message fetched: its id on the server (IMAP UID, POP3 message number) and its bytes —
/// none when it is bigger than the limit given to [`Session::fetch`] (it is never downloaded).
pub struct Fetched {
    pub id: u32,
    pub bytes: Vec<u8>,
    /// Its size as the server says.
    pub size: u64,
}

/// A byte stream to the server, with or without TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

const TIMEOUT: Duration = Duration::from_secs(60);

async fn connect(r: &Remote) -> Result<Box<dyn Stream>, String> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((r.host.as_str(), r.port)))
        .await
        .map_err(|_| format!("{}: no answer in {}s", r.name(), TIMEOUT.as_secs()))?
        .map_err(|e| format!("{}: {e}", r.name()))?;
    if !r.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(r.host.clone())
        .map_err(|e| format!("{}: {e}", r.name()))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{}: TLS: {e}", r.name()))?;
    Ok(Box::new(tls))
}

/// An open session, to fetch from and then mark what was acted on.
pub struct Session(Inner);

enum Inner {
    Imap(async_imap::Session<Box<dyn Stream>>),
    Pop3(async_pop::Client<Box<dyn Stream>>),
}

impl Session {
    /// Connects and logs in with the password from `env` (else the URL's); IMAP selects the
    /// folder.
    pub async fn open(r: &Remote, env: &str) -> Result<Session, String> {
        let password = password(r, env)?;
        let stream = connect(r).await?;
        let name = r.name();
        let io = |e: &dyn std::fmt::Display| format!("{name}: {e}");
        if r.pop3 {
            let mut client = async_pop::new(stream).await.map_err(|e| io(&e))?;
            client
                .login(&r.user, &password)
                .await
                .map_err(|e| format!("{name} refused the login of `{}`: {e}", r.user))?;
            return Ok(Session(Inner::Pop3(client)));
        }
        let mut client = async_imap::Client::new(stream);
        client
            .read_response()
            .await
            .map_err(|e| io(&e))?
            .ok_or_else(|| io(&"closed before its greeting"))?;
        let mut session = client
            .login(&r.user, &password)
            .await
            .map_err(|(e, _)| format!("{name} refused the login of `{}`: {e}", r.user))?;
        session
            .select(&r.folder)
            .await
            .map_err(|e| format!("{name}: cannot open folder {}: {e}", r.folder))?;
        Ok(Session(Inner::Imap(session)))
    }

    /// The messages not yet read: IMAP's unseen (left unseen), POP3's all. A message bigger
    /// than `max_bytes` comes without its bytes.
    pub async fn fetch(&mut self, max_bytes: u64) -> Result<Vec<Fetched>, String> {
        let mut out = Vec::new();
        match &mut self.0 {
            Inner::Imap(s) => {
                let uids = s.uid_search("UNSEEN").await.map_err(|e| e.to_string())?;
                let mut uids: Vec<u32> = uids.into_iter().collect();
                uids.sort();
                for chunk in uids.chunks(100) {
                    let set: Vec<String> = chunk.iter().map(u32::to_string).collect();
                    let sizes: Vec<_> = s
                        .uid_fetch(set.join(","), "RFC822.SIZE")
                        .await
                        .map_err(|e| e.to_string())?
                        .try_collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut small = Vec::new();
                    for f in sizes {
                        let (Some(uid), size) = (f.uid, u64::from(f.size.unwrap_or(0))) else {
                            continue;
                        };
                        if size > max_bytes {
                            out.push(Fetched {
                                id: uid,
                                bytes: Vec::new(),
                                size,
                            });
                        } else {
                            small.push(uid.to_string());
                        }
                    }
                    if small.is_empty() {
                        continue;
                    }
                    let fetches: Vec<_> = s
                        .uid_fetch(small.join(","), "BODY.PEEK[]")
                        .await
                        .map_err(|e| e.to_string())?
                        .try_collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    for f in fetches {
                        if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                            out.push(Fetched {
                                id: uid,
                                bytes: body.to_vec(),
                                size: body.len() as u64,
                            });
                        }
                    }
                }
            }
            Inner::Pop3(c) => {
                let stat = c.stat().await.map_err(|e| e.to_string())?;
                for n in 1..=stat.counter().value().map_err(|e| e.to_string())? {
                    let size = match c.list(Some(n)).await.map_err(|e| e.to_string())? {
                        async_pop::response::list::ListResponse::Single(item) => {
                            item.size().value().map_err(|e| e.to_string())? as u64
                        }
                        _ => 0,
                    };
                    if size > max_bytes {
                        out.push(Fetched {
                            id: n as u32,
                            bytes: Vec::new(),
                            size,
                        });
                        continue;
                    }
                    let bytes = c.retr(n).await.map_err(|e| e.to_string())?;
                    out.push(Fetched {
                        id: n as u32,
                        size: bytes.len() as u64,
                        bytes: bytes.to_vec(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Marks the messages acted on: IMAP `\Seen`, or deleted with `delete` (POP3 only then).
    pub async fn mark(&mut self, ids: &[u32], delete: bool) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        match &mut self.0 {
            Inner::Imap(s) => {
                let set: Vec<String> = ids.iter().map(u32::to_string).collect();
                let flags = if delete {
                    "+FLAGS (\\Seen \\Deleted)"
                } else {
                    "+FLAGS (\\Seen)"
                };
                let _: Vec<_> = s
                    .uid_store(set.join(","), flags)
                    .await
                    .map_err(|e| e.to_string())?
                    .try_collect()
                    .await
                    .map_err(|e| e.to_string())?;
                if delete {
                    let _: Vec<_> = s
                        .expunge()
                        .await
                        .map_err(|e| e.to_string())?
                        .try_collect()
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Inner::Pop3(c) if delete => {
                for id in ids {
                    c.dele(*id as usize).await.map_err(|e| e.to_string())?;
                }
            }
            Inner::Pop3(_) => {}
        }
        Ok(())
    }

    /// Logs out (POP3: `QUIT` is what makes its deletions happen).
    pub async fn close(self) -> Result<(), String> {
        match self.0 {
            Inner::Imap(mut s) => s.logout().await.map_err(|e| e.to_string()),
            Inner::Pop3(mut c) => c.quit().await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}

/// What a wait on the mailbox came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The server said the mailbox changed.
    Changed,
    /// Nothing within the time.
    Quiet,
    /// Not IMAP, or no IDLE offered: polling (`bounces.poll`, `editor.poll`) is all there is.
    Unsupported,
}

/// Waits on an IMAP mailbox with IDLE (RFC 2177) until the server says something changed or
/// `timeout` passes.
pub async fn idle(r: &Remote, env: &str, timeout: Duration) -> Result<Idle, String> {
    if r.pop3 {
        return Ok(Idle::Unsupported);
    }
    let Session(Inner::Imap(mut session)) = Session::open(r, env).await? else {
        return Ok(Idle::Unsupported);
    };
    let offered = session
        .capabilities()
        .await
        .map_err(|e| e.to_string())?
        .has_str("IDLE");
    if !offered {
        let _ = session.logout().await;
        return Ok(Idle::Unsupported);
    }
    let mut handle = session.idle();
    handle.init().await.map_err(|e| e.to_string())?;
    // Servers drop an IDLE after 30 minutes (RFC 2177): come back before that.
    let (wait, _stop) = handle.wait_with_timeout(timeout.min(Duration::from_secs(25 * 60)));
    let answer = wait.await.map_err(|e| e.to_string())?;
    let mut session = handle.done().await.map_err(|e| e.to_string())?;
    let _ = session.logout().await;
    Ok(match answer {
        async_imap::extensions::idle::IdleResponse::NewData(_) => Idle::Changed,
        _ => Idle::Quiet,
    })
}
