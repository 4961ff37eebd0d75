//! One mailbox reader for every consumer (bounce reports, the editors' inbox): a Maildir
//! (`new/` and `cur/`, per the Maildir specification) or IMAP / POP3 on a server ([`remote`]).
//!
//! A reading is a [`Batch`]: the messages not yet marked read, each with the name it is known
//! by before it is read ([`Message::seen_as`]: `file:<name>` in a Maildir, the content hash or —
//! too big to download — its place on the server), so that the consumer, which remembers what
//! it took in its store, reads each message once. The consumer then says which messages it is
//! done with: [`Batch::finish`] marks them read (Maildir: moved to `cur/` with the `S` flag;
//! IMAP: `\Seen`; POP3 has no flags) or deletes them. The others stay as they are.

use std::path::{Path, PathBuf};

pub use crate::config::MailboxUrl;

pub mod bounces;
pub mod remote;

/// Why a mailbox could not be read (its messages stay; nothing is decided).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{mailbox}: {message}")]
    Server { mailbox: String, message: String },
}

/// One message of a reading.
pub struct Message {
    /// What it is known by before it is read: `file:<name>` (Maildir), `sha256:<hex>` (server),
    /// or `<server>/<folder>#<id>` when too big to download.
    pub seen_as: String,
    /// Its size in bytes.
    pub size: u64,
    at: Place,
}

enum Place {
    File(PathBuf),
    /// Downloaded; `None` when bigger than the reading's limit.
    Fetched {
        id: u32,
        bytes: Option<Vec<u8>>,
    },
}

/// The messages of one reading, and the open mailbox to mark them in.
pub struct Batch {
    messages: Vec<Message>,
    limit: u64,
    from: From,
}

enum From {
    Maildir(PathBuf),
    Server(remote::Session, String),
}

impl Batch {
    /// Lists (Maildir) or downloads (server, with the password from `env`, else the URL's) the
    /// messages not yet marked read; one bigger than `limit` bytes comes without its bytes.
    pub async fn open(url: &MailboxUrl, env: &str, limit: u64) -> Result<Batch, Error> {
        match url {
            MailboxUrl::Maildir(dir) => Batch::maildir(dir, limit),
            MailboxUrl::Remote(r) => {
                let fail = |message| Error::Server {
                    mailbox: r.name(),
                    message,
                };
                let mut session = remote::Session::open(r, env).await.map_err(fail)?;
                let fetched = session.fetch(limit).await.map_err(fail)?;
                let messages = fetched
                    .into_iter()
                    .map(|f| {
                        let too_big = f.size > limit;
                        Message {
                            seen_as: if too_big {
                                format!("{}/{}#{}", r.name(), r.folder, f.id)
                            } else {
                                content_id(&f.bytes)
                            },
                            size: f.size,
                            at: Place::Fetched {
                                id: f.id,
                                bytes: (!too_big).then_some(f.bytes),
                            },
                        }
                    })
                    .collect();
                Ok(Batch {
                    messages,
                    limit,
                    from: From::Server(session, r.name()),
                })
            }
        }
    }

    /// [`Batch::open`] for a Maildir, which needs no runtime.
    pub fn maildir(dir: &Path, limit: u64) -> Result<Batch, Error> {
        Ok(Batch {
            messages: list_maildir(dir)?,
            limit,
            from: From::Maildir(dir.to_path_buf()),
        })
    }

    /// [`Batch::finish`] for a Maildir (nothing to close); a server's messages are not marked.
    pub fn finish_maildir(&self, done: &[usize], delete: bool) {
        let From::Maildir(dir) = &self.from else {
            return;
        };
        for &i in done {
            if let Place::File(file) = &self.messages[i].at {
                if let Err(e) = mark_file(dir, file, delete) {
                    tracing::warn!(file = %file.display(), "message not marked read: {e}");
                }
            }
        }
    }

    /// The messages not yet marked read, in the order they came.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The bytes of `messages()[i]`; `None` when it is bigger than the limit (never read).
    pub fn read(&self, i: usize) -> Result<Option<Vec<u8>>, Error> {
        let m = &self.messages[i];
        match &m.at {
            Place::Fetched { bytes, .. } => Ok(bytes.clone()),
            Place::File(_) if m.size > self.limit => Ok(None),
            Place::File(path) => {
                // A regular file only, never more than the cap (it may have grown since).
                crate::files::read_regular(path, self.limit, crate::files::Links::Follow)
                    .map(Some)
                    .map_err(|e| Error::Io {
                        path: path.clone(),
                        source: e.into(),
                    })
            }
        }
    }

    /// Marks the messages at `done` (indexes into [`Batch::messages`]) read — or deletes them
    /// with `delete` — and closes the mailbox. A Maildir file that cannot be moved is logged:
    /// the consumer remembers it, so it is not taken twice.
    pub async fn finish(self, done: &[usize], delete: bool) -> Result<(), Error> {
        match self.from {
            From::Maildir(_) => {
                self.finish_maildir(done, delete);
                Ok(())
            }
            From::Server(mut session, name) => {
                let ids: Vec<u32> = done
                    .iter()
                    .filter_map(|&i| match &self.messages[i].at {
                        Place::Fetched { id, .. } => Some(*id),
                        Place::File(_) => None,
                    })
                    .collect();
                let fail = |message| Error::Server {
                    mailbox: name.clone(),
                    message,
                };
                session.mark(&ids, delete).await.map_err(fail)?;
                session.close().await.map_err(fail)
            }
        }
    }
}

/// The files of `new/` and `cur/` not yet marked seen, sorted by name in each. `new/` must be
/// there; a `cur/` nobody made yet is empty.
fn list_maildir(dir: &Path) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let folder = dir.join(sub);
        let io = |source| Error::Io {
            path: folder.clone(),
            source,
        };
        let listing = match std::fs::read_dir(&folder) {
            Err(e) if sub == "cur" && e.kind() == std::io::ErrorKind::NotFound => continue,
            listing => listing.map_err(io)?,
        };
        let mut files: Vec<PathBuf> = listing
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || seen(name) {
                continue;
            }
            let meta = std::fs::metadata(&file).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
            // A FIFO or a folder is no message: one such entry must not stop every reading.
            if !meta.is_file() {
                tracing::warn!(file = %file.display(), "not a message file: left alone");
                continue;
            }
            let size = meta.len();
            out.push(Message {
                seen_as: format!("file:{}", name.split(":2,").next().unwrap_or(name)),
                size,
                at: Place::File(file),
            });
        }
    }
    Ok(out)
}

/// Seen: into `cur/` with the `S` flag, so that mail clients and we agree it was read.
fn mark_file(dir: &Path, file: &Path, delete: bool) -> std::io::Result<()> {
    if delete {
        return std::fs::remove_file(file);
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (base, flags) = name.split_once(":2,").unwrap_or((name, ""));
    let mut flags: Vec<char> = flags.chars().chain(['S']).collect();
    flags.sort_unstable();
    flags.dedup();
    let flags: String = flags.into_iter().collect();
    std::fs::create_dir_all(dir.join("cur"))?;
    std::fs::rename(file, dir.join("cur").join(format!("{base}:2,{flags}")))
}

/// The Maildir `S` (seen) flag in a file name (`…:2,S`).
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

/// A message's id by its content.
pub fn content_id(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        crate::content::hex(&sha2::Sha256::digest(bytes))
    )
}

/// Holds an IDLE (RFC 2177) on an IMAP mailbox — or watches a Maildir's `new/` — and sends on
/// `changed` when messages arrive, so they are read at once rather than at the next poll. Ends
/// when the server offers no IDLE or the folder cannot be watched (polling goes on), or at
/// `stop`. `what` names the mailbox in the log.
pub async fn watch(
    url: MailboxUrl,
    env: &'static str,
    what: &'static str,
    every: std::time::Duration,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
    stop: tokio_util::sync::CancellationToken,
) {
    use remote::{idle, Idle};
    let remote = match url {
        MailboxUrl::Remote(r) => r,
        MailboxUrl::Maildir(dir) => return watch_maildir(&dir, what, changed, stop).await,
    };
    loop {
        let waited = tokio::select! {
            _ = stop.cancelled() => return,
            w = idle(&remote, env, every) => w,
        };
        match waited {
            Ok(Idle::Changed) => {
                if changed.send(()).is_err() {
                    return;
                }
            }
            Ok(Idle::Quiet) => {}
            Ok(Idle::Unsupported) => return,
            Err(e) => {
                tracing::warn!("{what} {}: IDLE: {e}", remote.name());
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
    }
}

/// A Maildir's `new/` watched (inotify): a delivery renames a complete message into it.
async fn watch_maildir(
    dir: &Path,
    what: &str,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
    stop: tokio_util::sync::CancellationToken,
) {
    let new = dir.join("new");
    let (_watcher, mut events) = match crate::watch::watch(&new) {
        Ok(w) => w,
        Err(e) => {
            return tracing::warn!(
                "{what} {}: not watched ({e}); read every poll",
                new.display()
            )
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.recv() => {
                let Some(ev) = ev else {
                    return;
                };
                if !is_arrival(&ev) {
                    continue;
                }
                // Read once the folder is quiet: a delivery of several messages is one
                // reading, and a file written in place (not renamed in from tmp/, as Maildir
                // asks) is read once it is complete.
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let mut more = false;
                    while let Ok(ev) = events.try_recv() {
                        more |= is_arrival(&ev);
                    }
                    if !more {
                        break;
                    }
                }
                if changed.send(()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether an event in `new/` may be a message arriving. Opening, reading and closing after
/// reading — what a reading itself does to the folder and its files — and metadata changes are
/// not: counted, every reading would start the next one, for ever.
fn is_arrival(ev: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match ev.kind {
        EventKind::Access(kind) => kind == AccessKind::Close(AccessMode::Write),
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_folder_in_new_is_left_alone_and_the_messages_around_it_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("new/1.host"), b"Subject: a\r\n\r\na").unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(dir.path().join("new/2.fifo"))
            .status()
            .unwrap()
            .success());
        std::fs::create_dir(dir.path().join("new/3.folder")).unwrap();
        std::fs::write(dir.path().join("new/4.host"), b"Subject: b\r\n\r\nb").unwrap();
        let batch = Batch::maildir(dir.path(), 1024).unwrap();
        let names: Vec<&str> = batch
            .messages()
            .iter()
            .map(|m| m.seen_as.as_str())
            .collect();
        assert_eq!(names, ["file:1.host", "file:4.host"]);
        for i in 0..names.len() {
            assert!(batch.read(i).unwrap().is_some());
        }
    }

    #[test]
    fn a_reading_of_new_is_no_arrival_but_a_message_renamed_or_written_into_it_is() {
        use notify::event::*;
        let ev = |kind| notify::Event::new(kind).add_path("/m/new/1.host".into());
        for own in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!is_arrival(&ev(own)), "{own:?}");
        }
        for arrival in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Any,
        ] {
            assert!(is_arrival(&ev(arrival)), "{arrival:?}");
        }
    }

    #[tokio::test]
    async fn a_maildir_reading_lists_unseen_files_once_and_marks_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("new/1.host"), b"Subject: a\r\n\r\na").unwrap();
        std::fs::write(dir.path().join("new/2.host"), b"Subject: b\r\n\r\nb").unwrap();
        std::fs::write(dir.path().join("cur/0.host:2,S"), b"old").unwrap();
        let url = MailboxUrl::Maildir(dir.path().to_path_buf());
        let bare = tempfile::tempdir().unwrap();
        std::fs::create_dir(bare.path().join("new")).unwrap();
        std::fs::write(bare.path().join("new/9.host"), b"x").unwrap();
        let only_new = Batch::maildir(bare.path(), 1024).unwrap();
        assert_eq!(only_new.messages().len(), 1, "no cur/ yet: nothing there");
        only_new.finish_maildir(&[0], false);
        assert!(
            bare.path().join("cur/9.host:2,S").exists(),
            "cur/ made to mark it"
        );
        let batch = Batch::open(&url, "UNUSED", 1024).await.unwrap();
        let names: Vec<&str> = batch
            .messages()
            .iter()
            .map(|m| m.seen_as.as_str())
            .collect();
        assert_eq!(names, ["file:1.host", "file:2.host"]);
        assert_eq!(batch.read(1).unwrap().unwrap(), b"Subject: b\r\n\r\nb");
        batch.finish(&[0], false).await.unwrap();
        assert!(dir.path().join("cur/1.host:2,S").exists());
        assert!(dir.path().join("new/2.host").exists());
        let batch = Batch::open(&url, "UNUSED", 4).await.unwrap();
        assert_eq!(batch.messages().len(), 1);
        assert_eq!(
            batch.read(0).unwrap(),
            None,
            "bigger than the limit: never read"
        );
    }
}
