//! Publish: scan `posts/`, decide what is due, record it in the store, and rewrite `public/`
//! (feeds and archive) atomically. One bad post is reported and skipped; the rest go on.

use std::collections::{HashMap, HashSet};

mod public;
pub use public::{write_public, Written};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Utc};

use crate::config::Config;
use crate::content::{self, IngestOptions, Kind, ListError, Post};
use crate::crosspost;
use crate::files::display;
use crate::problem::Problem;
use crate::render::Entry;
use crate::store::{Change, PostRecord, Store, StoreError};

/// Every post file parsed, and a problem for each that could not be.
#[derive(Debug, Default)]
pub struct Scan {
    pub posts: Vec<std::sync::Arc<Post>>,
    pub problems: Vec<Problem>,
}

/// Ingests every post file under `root/posts`. A slug used twice is an error on the later file.
/// Fails only when `posts/` cannot be listed; a bad file is a problem in the scan.
pub fn scan(root: &Path, opts: &IngestOptions) -> Result<Scan, ListError> {
    let dir = root.join("posts");
    let mut scan = Scan::default();
    for path in content::list_post_files(&dir)? {
        match read_post(&path, &dir, opts) {
            Ok(post) => scan.posts.push(std::sync::Arc::new(post)),
            Err(problem) => scan.problems.push(problem),
        }
    }
    scan.dedupe_slugs();
    Ok(scan)
}

/// Ingests one post file. A panic while reading it is this file's problem, reported like any
/// invalid post: it never ends the daemon, nor hides the other posts.
pub fn read_post(path: &Path, dir: &Path, opts: &IngestOptions) -> Result<Post, Problem> {
    read_post_and_pictures(path, dir, opts).0
}

/// [`read_post`], and the picture files beside the post that it shows (or would show, had
/// they been there): a change to one of them is a change to the post.
pub fn read_post_and_pictures(
    path: &Path,
    dir: &Path,
    opts: &IngestOptions,
) -> (Result<Post, Problem>, Vec<PathBuf>) {
    if let Some(why) = copy_of_a_post(path) {
        return (Err(Problem::new(display(path), None, why)), Vec::new());
    }
    let read = guarded(path, "read", || content::ingest(path, dir, opts));
    let pictures = match &read {
        Ok(Ok(post)) => post
            .pictures
            .iter()
            .filter_map(|p| p.path.clone())
            .collect(),
        Ok(Err(content::IngestError::Pictures { files, .. })) => files.clone(),
        _ => Vec::new(),
    };
    let post = match read {
        Ok(Ok(post)) => Ok(post),
        Ok(Err(e)) => Err(e.problem(&display(path))),
        Err(why) => Err(Problem::new(
            display(path),
            None,
            format!("tayori failed reading this file (a bug; please report it): {why}"),
        )),
    };
    (post, pictures)
}

/// Runs `f`, one step (`read`, `page`, `email`) on the post file `path`; a panic in it is
/// returned as its message instead of unwinding further.
pub(crate) fn guarded<T>(path: &Path, step: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        panic_if_asked(path, step);
        f()
    }))
    .map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into())
    })
}

/// Test hook, in debug builds only: `TAYORI_TEST_PANIC_ON=<file name>` makes reading that file
/// panic, `TAYORI_TEST_PANIC_ON=page:<file name>` making its page and `email:<file name>`
/// rendering its email, so that the tests can show a panic is one file's error.
pub(crate) fn panic_if_asked(path: &Path, step: &str) {
    #[cfg(debug_assertions)]
    if let Ok(name) = std::env::var("TAYORI_TEST_PANIC_ON") {
        let (want_step, file) = name.split_once(':').unwrap_or(("read", &name));
        if want_step == step && path.file_name().is_some_and(|n| n == file) {
            panic!("TAYORI_TEST_PANIC_ON={name}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (path, step);
}

impl Scan {
    /// Sets aside the copies sync tools and second saves make (see [`sync_copy`]), then keeps
    /// the first post of each slug (in file order); each later one is a problem.
    pub fn dedupe_slugs(&mut self) {
        self.set_aside_sync_copies();
        // Borrowed keys and indices: this runs at every build, over every post.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.posts.len());
        let mut later = Vec::new();
        for (i, p) in self.posts.iter().enumerate() {
            if let Some(&f) = first.get(p.slug.as_str()) {
                let why = format!(
                    "slug `{}` is already used by {}",
                    p.slug,
                    display(&self.posts[f].source).display()
                );
                later.push((i, Problem::new(display(&p.source), None, why)));
            } else {
                first.insert(&p.slug, i);
            }
        }
        for (i, problem) in later.into_iter().rev() {
            self.posts.remove(i);
            self.problems.push(problem);
        }
    }
}

impl Scan {
    /// Files a sync tool (Dropbox, Syncthing) or a second save made are never new posts: each
    /// is a problem naming the file it copies, and is left alone on disk.
    fn set_aside_sync_copies(&mut self) {
        if !self.posts.iter().any(|p| sync_copy(&p.source).is_some()) {
            return;
        }
        let hashes: HashMap<&str, &Path> = self
            .posts
            .iter()
            .filter(|p| sync_copy(&p.source).is_none())
            .map(|p| (p.hash.as_str(), p.source.as_path()))
            .collect();
        let mut set_aside = Vec::new();
        for (i, p) in self.posts.iter().enumerate() {
            let why = match sync_copy(&p.source) {
                Some(SyncCopy::Conflict) => Some(CONFLICT_COPY.to_string()),
                Some(SyncCopy::Numbered) => hashes
                    .get(p.hash.as_str())
                    .filter(|original| **original != p.source.as_path())
                    .map(|original| {
                        format!(
                            "the same text as {}: a second copy (a sync tool's or a second save), not published; delete it",
                            display(original).display()
                        )
                    }),
                None => None,
            };
            if let Some(why) = why {
                set_aside.push((i, Problem::new(display(&p.source), None, why)));
            }
        }
        for (i, problem) in set_aside.into_iter().rev() {
            self.posts.remove(i);
            self.problems.push(problem);
        }
    }
}

const CONFLICT_COPY: &str = "a copy a sync tool made when the file was changed in two places: not published; compare it with the original, keep one and delete the other";

/// Why `path` is a copy and no post, judged before it is read: a sync tool's conflicted copy,
/// or `name (1).md` with the very bytes of `name.md` beside it.
fn copy_of_a_post(path: &Path) -> Option<String> {
    match sync_copy(path)? {
        SyncCopy::Conflict => Some(CONFLICT_COPY.to_string()),
        SyncCopy::Numbered => {
            let stem = path.file_stem()?.to_str()?;
            let base = stem
                .strip_suffix(')')
                .and_then(|s| s.rsplit_once('('))
                .or_else(|| stem.strip_suffix('）').and_then(|s| s.rsplit_once('（')))?
                .0
                .trim_end();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let original = path.with_file_name(format!("{base}.{ext}"));
            // Read as posts are: a FIFO or a huge file named like a copy never blocks here.
            let read = |p: &Path| {
                crate::files::read_regular(p, content::MAX_DOCX_BYTES, crate::files::Links::Follow)
                    .ok()
            };
            let same = read(&original)? == read(path)?;
            same.then(|| {
                format!(
                    "the same text as {}: a second copy (a sync tool's or a second save), not published; delete it",
                    display(&original).display()
                )
            })
        }
    }
}

/// What kind of copy a file name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCopy {
    /// `….sync-conflict-….md` (Syncthing), `… (… conflicted copy …).md`,
    /// `… (…の競合コピー …).md` (Dropbox): never a post.
    Conflict,
    /// `… (1).md`: a copy when its content is that of another post.
    Numbered,
}

/// Whether `path`'s name is that of a copy a sync tool or a second save makes.
pub fn sync_copy(path: &Path) -> Option<SyncCopy> {
    let stem = path.file_stem()?.to_str()?;
    let lower = stem.to_lowercase();
    if lower.contains(".sync-conflict-")
        || lower.contains("conflicted copy")
        || stem.contains("の競合コピー")
        || stem.contains("競合コピー")
    {
        return Some(SyncCopy::Conflict);
    }
    let numbered = |open: char, close: char| {
        stem.strip_suffix(close)
            .and_then(|s| s.rsplit_once(open))
            .is_some_and(|(base, n)| {
                !base.trim().is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
            })
    };
    (numbered('(', ')') || numbered('（', '）')).then_some(SyncCopy::Numbered)
}

/// The publication time of a post: its `date`, else when the store first saw it, else `now`.
/// A store that cannot be read is an error, never "not seen yet".
pub fn published_time(
    post: &Post,
    store: Option<&Store>,
    now: DateTime<Utc>,
) -> Result<DateTime<FixedOffset>, StoreError> {
    if let Some(d) = post.date {
        return Ok(d);
    }
    let record = store.map(|s| s.post(&post.slug)).transpose()?.flatten();
    Ok(published_or_seen(post, record.as_ref(), now))
}

/// A post's `date`, else when the store first saw it (`record`), else `now`.
fn published_or_seen(
    post: &Post,
    record: Option<&PostRecord>,
    now: DateTime<Utc>,
) -> DateTime<FixedOffset> {
    post.date
        .or(record.map(|r| r.first_seen))
        .unwrap_or_else(|| now.fixed_offset())
}

/// When a post is published if it is due at `now` (not a draft, its time come), else `None`.
/// A store that cannot be read is an error, never "not due".
pub fn due(
    post: &Post,
    store: Option<&Store>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
    let record = store.map(|s| s.post(&post.slug)).transpose()?.flatten();
    Ok(due_with(post, record.as_ref(), now))
}

/// [`due`], with the store's record of the post already in hand.
fn due_with(
    post: &Post,
    record: Option<&PostRecord>,
    now: DateTime<Utc>,
) -> Option<DateTime<FixedOffset>> {
    let published = published_or_seen(post, record, now);
    (!post.draft && published <= now).then_some(published)
}

/// What a build did.
#[derive(Debug, Default)]
pub struct Report {
    /// Everything published, as now in the feeds.
    pub entries: Vec<Entry>,
    /// Slugs newly published by this build.
    pub new: Vec<String>,
    /// Slugs whose content changed.
    pub updated: Vec<String>,
    /// Slugs whose file is gone.
    pub deleted: Vec<String>,
    /// Posts waiting for their date.
    pub scheduled: Vec<(String, DateTime<FixedOffset>)>,
    pub problems: Vec<Problem>,
}

/// Scans posts, records the due ones in the store and rewrites `public/`.
pub fn build(
    root: &Path,
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Report, BuildError> {
    let opts = IngestOptions::from_config(config).with_media_cache(root, true);
    let scan = scan(root, &opts)?;
    publish(root, config, store, scan, now, &mut Written::default())
}

/// Records the due posts of `scan` in the store, notices deletions, queues the webhook events
/// (never for the back catalogue) and rewrites `public/`. `scan` comes from a listing of
/// `posts/` that succeeded: only then may a post missing from it be taken as deleted.
/// `written` is what the previous build wrote (see [`Written`]); a new one rewrites everything.
pub fn publish(
    root: &Path,
    config: &Config,
    store: &Store,
    scan: Scan,
    now: DateTime<Utc>,
    written: &mut Written,
) -> Result<Report, BuildError> {
    let mut report = Report {
        problems: scan.problems,
        ..Report::default()
    };
    // One query for what the store knows; only new, changed and deleted posts write to it.
    let known = store.all_posts()?;
    let gone = gone_posts(&known, &scan.posts)?;
    // A new file with the same content as a post that is gone is that post renamed: it keeps
    // its announcement state, so it is not emailed again.
    let vanished: HashMap<&str, &str> = gone
        .iter()
        .map(|r| (r.hash.as_str(), r.announced.as_str()))
        .collect();
    for post in scan.posts {
        let known = known.get(&post.slug);
        let Some(published) = due_with(&post, known, now) else {
            if !post.draft {
                let at = published_or_seen(&post, known, now);
                report.scheduled.push((post.slug.clone(), at));
            }
            continue;
        };
        let unchanged = known.filter(|r| r.hash == post.hash && !r.deleted);
        match unchanged {
            Some(r) => report.entries.push(Entry {
                published: r.published_at,
                updated: r.updated_at,
                post,
            }),
            None => record(config, store, post, published, &vanished, now, &mut report)?,
        }
    }
    for r in &gone {
        delete(config, store, r, now, &mut report)?;
    }
    let unwritten = write_public(root, config, &report.entries, written)?;
    if !unwritten.is_empty() {
        let broken: HashSet<&Path> = unwritten.iter().map(|p| p.path.as_path()).collect();
        report
            .entries
            .retain(|e| !broken.contains(display(&e.post.source).as_path()));
        report.problems.extend(unwritten);
    }
    crate::search::sync(config, store, &report.entries)?;
    // What `posts/` held when the store was created is recorded: from now on a file is new.
    store.close_back_catalogue()?;
    Ok(report)
}

/// Published posts whose file is gone and whose slug no file carries: deleted — unless a file
/// that is still there is merely invalid (the attorney is probably mid-edit).
fn gone_posts(
    known: &HashMap<String, PostRecord>,
    present: &[std::sync::Arc<Post>],
) -> Result<Vec<PostRecord>, BuildError> {
    let present: HashSet<&str> = present.iter().map(|p| p.slug.as_str()).collect();
    let mut gone = Vec::new();
    for r in known.values() {
        if r.deleted || present.contains(r.slug.as_str()) {
            continue;
        }
        let exists = Path::new(&r.path)
            .try_exists()
            .map_err(|e| BuildError::Read(PathBuf::from(&r.path), e))?;
        if !exists {
            gone.push(r.clone());
        }
    }
    gone.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(gone)
}

/// Records one due post and queues its webhook event (never for the back catalogue).
fn record(
    config: &Config,
    store: &Store,
    post: std::sync::Arc<Post>,
    published: DateTime<FixedOffset>,
    vanished: &HashMap<&str, &str>,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), BuildError> {
    let (mut record, change) = store.record_post(&post, published, now)?;
    if change == Change::New {
        if let Some(announced) = vanished.get(post.hash.as_str()) {
            store.set_announced(&post.slug, announced)?;
            record.announced = announced.to_string();
        }
    }
    let entry = Entry {
        published: record.published_at,
        updated: record.updated_at,
        post,
    };
    let back_catalogue = record.announced == "back_catalogue";
    match change {
        Change::New if !back_catalogue => {
            let file = display(&entry.post.source);
            tracing::info!(slug = %entry.post.slug, file = %file.display(), "published");
            crosspost::queue(config, store, crosspost::Event::Published, &entry, now)?;
            report.new.push(entry.post.slug.clone());
        }
        Change::New => report.new.push(entry.post.slug.clone()),
        Change::Updated => {
            tracing::info!(slug = %entry.post.slug, "updated");
            crosspost::queue(config, store, crosspost::Event::Updated, &entry, now)?;
            report.updated.push(entry.post.slug.clone());
        }
        Change::Unchanged => {}
    }
    report.entries.push(entry);
    Ok(())
}

/// Marks a post whose file is gone deleted and queues `post.deleted`.
fn delete(
    config: &Config,
    store: &Store,
    r: &PostRecord,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), BuildError> {
    if !store.mark_deleted(&r.slug, now)? {
        return Ok(());
    }
    tracing::info!(slug = %r.slug, file = %r.path, "deleted");
    let kind = if r.kind == "note" {
        Kind::Note
    } else {
        Kind::Article
    };
    let entry = Entry {
        post: Post::tombstone(&r.slug, kind, &r.title, &r.hash, Path::new(&r.path)).into(),
        published: r.published_at,
        updated: now.fixed_offset(),
    };
    crosspost::queue(config, store, crosspost::Event::Deleted, &entry, now)?;
    report.deleted.push(r.slug.clone());
    Ok(())
}

/// Why a build failed as a whole (not a single post).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error("cannot tell whether {0} still exists: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("email stylesheet: {0}")]
    Css(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::{sync_copy, SyncCopy};
    use std::path::Path;

    #[test]
    fn sync_tools_copies_are_known_by_name() {
        let c = |n: &str| sync_copy(Path::new(n));
        assert_eq!(
            c("posts/a.sync-conflict-20261130-101010-ABCDEFG.md"),
            Some(SyncCopy::Conflict)
        );
        assert_eq!(
            c("posts/a (Sakura's conflicted copy 2026-11-30).md"),
            Some(SyncCopy::Conflict)
        );
        assert_eq!(
            c("posts/a (さくら の競合コピー 2026-11-30).md"),
            Some(SyncCopy::Conflict)
        );
        assert_eq!(
            c("posts/2026-11-09-menkai (1).md"),
            Some(SyncCopy::Numbered)
        );
        assert_eq!(
            c("posts/2026-11-09-menkai（2）.txt"),
            Some(SyncCopy::Numbered)
        );
        assert_eq!(c("posts/2026-11-09-menkai.md"), None);
        assert_eq!(c("posts/(1).md"), None);
        assert_eq!(c("posts/第(1)回.md"), None);
    }
}
