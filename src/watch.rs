//! Watching `posts/` (notify: inotify on Linux) and deciding when a file is ready to ingest.
//!
//! A file is ready when nobody is writing it — inotify tells us when a writer closes it
//! (`IN_CLOSE_WRITE`) — and it has been quiet for [`QUIET`]; a file moved in finished (renamed
//! into `posts/`) only needs [`SETTLE`]. So a file saved atomically (temp + rename) is taken at
//! once, one copied in over minutes when the copy closes it, and one
//! edited in place after the editor's last write. A writer that never closes (or a missed close)
//! is given up on after [`STUCK`] of silence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long a file must be quiet before it is read.
pub const QUIET: Duration = Duration::from_millis(250);
/// How long a file renamed into place must be quiet: just enough to take a burst of moves in one
/// build.
pub const SETTLE: Duration = Duration::from_millis(30);
/// After this long without events, a file still "being written" is read anyway.
pub const STUCK: Duration = Duration::from_secs(30);

/// Starts watching `dir` recursively; events arrive on the returned channel.
pub fn watch(
    dir: &Path,
) -> notify::Result<(RecommendedWatcher, mpsc::UnboundedReceiver<notify::Event>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                let _ = tx.send(ev);
            }
            Err(e) => tracing::warn!("watching posts/: {e}"),
        })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok((watcher, rx))
}

#[derive(Debug, Clone, Copy)]
struct FileState {
    writing: bool,
    /// Renamed into place by its writer: complete, unless written again.
    moved_in: bool,
    touched: Instant,
}

impl FileState {
    /// When the file may be read, however long since.
    fn ready_at(&self) -> Instant {
        self.touched
            + match (self.writing, self.moved_in) {
                (true, _) => STUCK,
                (false, true) => SETTLE,
                (false, false) => QUIET,
            }
    }
}

/// What the watcher has seen of each file.
#[derive(Debug, Default)]
pub struct Tracker {
    files: HashMap<PathBuf, FileState>,
}

impl Tracker {
    /// Takes in one event seen at `now`; returns whether it concerned a post file (or a folder).
    pub fn observe(&mut self, ev: &notify::Event, now: Instant) -> bool {
        // Opening and reading a file (as we do ourselves when ingesting it) or touching its
        // metadata changes nothing: only writes, closes after writing, creations, renames and
        // removals count — or every reconcile would trigger the next one.
        let counts = matches!(
            ev.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        if !counts {
            return false;
        }
        let mut relevant = false;
        let renamed_to = matches!(ev.kind, EventKind::Modify(ModifyKind::Name(_)));
        for (i, path) in ev.paths.iter().enumerate() {
            // A picture is no post, but an edit of one changes the posts that show it: it is
            // watched the same way, so that a post waits while its picture is being written.
            let is_post =
                crate::content::is_post_file(path) || crate::content::is_picture_file(path);
            relevant |= is_post || path.extension().is_none();
            if !is_post {
                continue;
            }
            let moved_in = renamed_to && i + 1 == ev.paths.len();
            let writing = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
                // A rename moves a finished file in (the last path is the destination).
                EventKind::Modify(ModifyKind::Name(_)) if moved_in => false,
                EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                    true
                }
                EventKind::Remove(_) => {
                    self.files.remove(path);
                    continue;
                }
                _ => self.files.get(path).is_some_and(|f| f.writing),
            };
            self.files.insert(
                path.clone(),
                FileState {
                    writing,
                    moved_in: moved_in && !writing,
                    touched: now,
                },
            );
        }
        relevant
    }

    /// Whether `path` can be read at `now`.
    pub fn ready(&self, path: &Path, now: Instant) -> bool {
        match self.files.get(path) {
            None => true,
            Some(f) => now >= f.ready_at(),
        }
    }

    /// When the next file not yet taken may become ready — possibly already past (the caller
    /// then checks at once), so that a file is never left waiting for another event.
    pub fn next_check(&self) -> Option<Instant> {
        self.files.values().map(FileState::ready_at).min()
    }

    /// Forgets files that are no longer there (renamed away, or removed without an event).
    /// `present` is sorted, as [`crate::content::list_post_files`] gives it.
    pub fn keep_only(&mut self, present: &[PathBuf]) {
        self.files.retain(|p, _| {
            present.binary_search(p).is_ok() || (crate::content::is_picture_file(p) && p.exists())
        });
    }

    /// Forgets the pictures that are ready at `now`: the posts showing them have been read
    /// (a picture no post shows must not be waited for either).
    pub fn forget_ready_pictures(&mut self, now: Instant) {
        self.files
            .retain(|p, f| !crate::content::is_picture_file(p) || now < f.ready_at());
    }

    /// Forgets a file once it has been read (keeps the map small).
    pub fn taken(&mut self, path: &Path) {
        self.files.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RenameMode};

    fn ev(kind: EventKind, paths: &[&str]) -> notify::Event {
        notify::Event {
            kind,
            paths: paths.iter().map(PathBuf::from).collect(),
            attrs: Default::default(),
        }
    }

    #[test]
    fn a_file_being_written_is_not_ready_until_closed_and_quiet() {
        let mut t = Tracker::default();
        let p = Path::new("/n/posts/a.md");
        let t0 = Instant::now();
        assert!(t.observe(
            &ev(EventKind::Create(CreateKind::File), &["/n/posts/a.md"]),
            t0
        ));
        t.observe(
            &ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/n/posts/a.md"],
            ),
            t0,
        );
        assert!(!t.ready(p, t0 + QUIET * 4), "still being written");
        assert!(
            t.ready(p, t0 + STUCK),
            "a writer that never closes is given up on"
        );
        let closed = t0 + Duration::from_secs(1);
        t.observe(
            &ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/n/posts/a.md"],
            ),
            closed,
        );
        assert!(!t.ready(p, closed), "closed, but not yet quiet");
        assert_eq!(t.next_check(), Some(closed + QUIET));
        assert!(!t.ready(p, closed + QUIET - Duration::from_millis(1)));
        assert!(t.ready(p, closed + QUIET));
    }

    #[test]
    fn reading_a_file_is_not_a_change() {
        let mut t = Tracker::default();
        let read = ev(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &["/n/posts/a.md"],
        );
        let open = ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["/n/posts/a.md"],
        );
        let now = Instant::now();
        assert!(!t.observe(&read, now) && !t.observe(&open, now));
        assert!(t.next_check().is_none());
    }

    #[test]
    fn ignores_editor_temp_files_and_takes_renamed_files_after_a_short_settle() {
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert!(!t.observe(
            &ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/n/posts/.a.md.swp"]
            ),
            t0
        ));
        t.observe(
            &ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/n/posts/.tmp123", "/n/posts/b.md"],
            ),
            t0,
        );
        let b = Path::new("/n/posts/b.md");
        assert!(!t.ready(b, t0), "settle first");
        assert!(
            t.ready(b, t0 + SETTLE) && SETTLE < QUIET,
            "a file moved in is taken well before QUIET"
        );
    }
}
