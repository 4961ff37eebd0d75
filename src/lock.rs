//! One sender per folder: the lock on `state/sender.lock` that a process must hold to make,
//! resume or send an issue.
//!
//! It is an `flock(2)` (through `std::fs::File::try_lock`), held for the life of `tayori run`
//! or of one `tayori send`, and released by the kernel however the process ends — a SIGKILL
//! or a power cut leaves no stale lock. The holder writes its pid, start time and command into
//! the file so that others can name it. [`SenderLock`] is the proof of holding it: the store's
//! `requeue_in_flight` and the delivery entry points take one, so no code path can hand
//! another process's in-flight deliveries back to `pending`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

/// The lock file's name inside `state/`.
pub const FILE_NAME: &str = "sender.lock";

/// The lock file of a newsletter folder.
pub fn path_in(root: &Path) -> PathBuf {
    root.join("state").join(FILE_NAME)
}

/// Which command holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `tayori run`: holds it for the daemon's whole life and takes `send` requests.
    Run,
    /// `tayori send`: holds it while it sends one issue.
    Send,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Run => "run",
            Command::Send => "send",
        }
    }
}

/// The process that holds the lock, as it wrote itself into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub since: DateTime<FixedOffset>,
    pub command: Command,
}

impl Holder {
    /// `` `tayori run` (pid 1234, since 2026-11-30 09:00:00 +09:00) `` in `tz`.
    pub fn describe(&self, tz: &chrono_tz::Tz) -> String {
        format!(
            "`tayori {}` (pid {}, since {})",
            self.command.name(),
            self.pid,
            self.since.with_timezone(tz).format("%Y-%m-%d %H:%M:%S %:z")
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(Holder {
            pid: field("pid")?.parse().ok()?,
            since: DateTime::parse_from_rfc3339(field("since")?).ok()?,
            command: match field("command")? {
                "run" => Command::Run,
                "send" => Command::Send,
                _ => return None,
            },
        })
    }
}

/// Held: this process may make, resume and send issues of the folder. Released when dropped,
/// or by the kernel when the process dies.
#[derive(Debug)]
pub struct SenderLock {
    file: File,
}

/// What trying to take the lock found.
#[derive(Debug)]
pub enum Attempt {
    Acquired(SenderLock),
    /// Another process holds it; `None` when it has not written its name yet (it just took
    /// the lock) or wrote something unreadable.
    Held(Option<Holder>),
}

impl SenderLock {
    /// Takes the lock of `root` without waiting, creating `state/` (0700) and the file (0600).
    pub fn try_acquire(root: &Path, command: Command) -> std::io::Result<Attempt> {
        let dir = root.join("state");
        crate::files::private_dir(&dir)?;
        let path = path_in(root);
        let mut open = OpenOptions::new();
        open.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let mut file = open.open(&path).map_err(|e| at(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Attempt::Held(read_holder(&mut file))),
            Err(TryLockError::Error(e)) => return Err(at(&path, e)),
        }
        let me = format!(
            "pid={}\nsince={}\ncommand={}\n",
            std::process::id(),
            Utc::now().to_rfc3339(),
            command.name()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .map_err(|e| at(&path, e))?;
        Ok(Attempt::Acquired(SenderLock { file }))
    }
}

impl Drop for SenderLock {
    fn drop(&mut self) {
        // Nobody holds it any more: the name goes (the kernel drops the lock with the file).
        let _ = self.file.set_len(0);
    }
}

/// The holder's name; a process that has just taken the lock writes it a moment later.
fn read_holder(file: &mut File) -> Option<Holder> {
    for _ in 0..50 {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        // A name whose process is gone is a killed holder's; the new one writes its own.
        if let Some(h) = read.ok().and_then(|_| Holder::parse(&text)).filter(alive) {
            return Some(h);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Whether the holder's process still exists.
fn alive(h: &Holder) -> bool {
    let Ok(pid) = libc::pid_t::try_from(h.pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Who holds the lock of `root` now, read without taking it (for `status`): the name in the
/// file, when its process still exists.
pub fn holder(root: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path_in(root)).ok()?;
    Holder::parse(&text).filter(alive)
}

fn at(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("{}: {e}", crate::files::display(path).display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let Attempt::Acquired(first) = SenderLock::try_acquire(dir.path(), Command::Run).unwrap()
        else {
            panic!("a free lock is taken");
        };
        match SenderLock::try_acquire(dir.path(), Command::Send).unwrap() {
            Attempt::Held(Some(h)) => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.command, Command::Run);
            }
            other => panic!("held by the first: {other:?}"),
        }
        drop(first);
        assert!(holder(dir.path()).is_none(), "the name goes with the lock");
        assert!(matches!(
            SenderLock::try_acquire(dir.path(), Command::Send).unwrap(),
            Attempt::Acquired(_)
        ));
    }

    #[test]
    fn names_the_holder_in_the_site_time_zone() {
        let h = Holder::parse("pid=42\nsince=2026-11-30T00:00:00+00:00\ncommand=run\n").unwrap();
        assert_eq!(
            h.describe(&chrono_tz::Asia::Tokyo),
            "`tayori run` (pid 42, since 2026-11-30 09:00:00 +09:00)"
        );
    }
}
