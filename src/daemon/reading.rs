//! Reading `posts/` for a build: each file is parsed again only when it changed.
//!
//! A build lists `posts/` (the listing is the truth about which files exist) and takes every
//! other fact from the last read of each file while the file's stamp — inode, size, modification
//! and change times — is the same. So an edit, a rename over it or a copy is read again even if
//! no inotify event arrived, and a drop into a folder of 5,000 posts parses one file, not 5,000.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::content::{self, IngestOptions, Post};
use crate::problem::Problem;
use crate::publish::Scan;
use crate::watch::Tracker;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// The last read of one file.
#[derive(Debug, Default)]
pub(super) struct Cached {
    stamp: Option<Stamp>,
    /// The last good parse, used while the file is being written or is invalid.
    post: Option<std::sync::Arc<Post>>,
    /// Why the file as it is now is not a valid post.
    problem: Option<Problem>,
    /// A file that failed unchanged is read again only after this (see [`RETRY_FIRST`]).
    retry_after: Option<std::time::Instant>,
    /// How many times in a row this version failed.
    failures: u32,
    /// The picture files beside the post that it shows, as they were when it was read.
    pictures: Vec<(PathBuf, Option<Stamp>)>,
}

/// A file that failed is read again at a later build even unchanged — the failure may have
/// been the disk's — but not at every build: an expensive bad file would hold the publisher.
/// The wait doubles from this, up to [`RETRY_MAX`].
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(5);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Lists `posts/` and returns every post, parsing only the files that changed. A file still
/// being written (per `tracker`) keeps its last good parse. Fails only when the folder cannot
/// be listed.
pub(super) fn read_posts(
    dir: &Path,
    opts: &IngestOptions,
    tracker: &mut Tracker,
    cache: &mut HashMap<PathBuf, Cached>,
) -> Result<Scan, content::ListError> {
    let files = content::list_post_files(dir)?;
    let present: HashSet<&PathBuf> = files.iter().collect();
    cache.retain(|p, _| present.contains(p));
    tracker.keep_only(&files);
    let mut scan = Scan::default();
    let started = std::time::Instant::now();
    for path in files {
        let cached = cache.entry(path.clone()).or_default();
        let pictures_written =
            |c: &Cached, t: &Tracker| c.pictures.iter().any(|(p, _)| !t.ready(p, started));
        if !tracker.ready(&path, started) || pictures_written(cached, tracker) {
            scan.posts.extend(cached.post.clone());
            continue;
        }
        tracker.taken(&path);
        let now = stamp(&path);
        let pictures_changed = cached.pictures.iter().any(|(p, s)| stamp(p) != *s);
        let changed = now.is_none() || now != cached.stamp || pictures_changed;
        let retry = cached.problem.is_some() && cached.retry_after.is_none_or(|t| started >= t);
        if changed || retry {
            if changed {
                cached.failures = 0;
            }
            let previous = (cached.post.clone(), cached.problem.take());
            read_one(&path, dir, opts, now, cached);
            if pictures_written(cached, tracker) {
                // A picture still being copied in is neither broken nor finished (a cut-off
                // JPEG may even decode): the last read stands, and the post is read again
                // once the picture is complete.
                (cached.post, cached.problem) = previous;
                cached.stamp = None;
                scan.posts.extend(cached.post.clone());
                continue;
            }
            let previous = previous.1;
            // Each version of a bad file is logged once, not at every build.
            if let Some(problem) = cached
                .problem
                .as_ref()
                .filter(|p| previous.as_ref() != Some(*p))
            {
                tracing::warn!(file = %problem.path.display(), reason = %problem.message, "rejected file");
            }
            cached.retry_after = cached.problem.is_some().then(|| {
                cached.failures = cached.failures.saturating_add(1);
                let wait = RETRY_FIRST.saturating_mul(1 << cached.failures.min(8));
                started + wait.min(RETRY_MAX)
            });
        }
        scan.posts.extend(cached.post.clone());
        scan.problems.extend(cached.problem.clone());
    }
    tracker.forget_ready_pictures(started);
    scan.dedupe_slugs();
    Ok(scan)
}

fn read_one(
    path: &Path,
    dir: &Path,
    opts: &IngestOptions,
    stamp: Option<Stamp>,
    cached: &mut Cached,
) {
    cached.stamp = stamp;
    let (read, pictures) = crate::publish::read_post_and_pictures(path, dir, opts);
    cached.pictures = pictures
        .into_iter()
        .map(|p| {
            let s = self::stamp(&p);
            (p, s)
        })
        .collect();
    match read {
        Ok(post) => {
            cached.post = Some(std::sync::Arc::new(post));
            cached.problem = None;
        }
        Err(problem) => cached.problem = Some(problem),
    }
}
