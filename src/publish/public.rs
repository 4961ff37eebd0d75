//! Writing `public/`: feeds, the index, one page per year and one per post — only what changed.
//!
//! A daemon keeps a [`Written`] between builds: what each page was made from last time (the
//! post's content hash and dates, the stylesheet). A build then renders the pages of the posts
//! that changed, the index, the year pages whose posts changed, and the feeds (the newest 50
//! items) — the same few files whether the archive holds 100 posts or 5,000. Without one (the
//! `build` command, a daemon's first build) every page is rendered, and a file whose bytes are
//! unchanged is still not rewritten, so `Last-Modified` stays true.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use chrono::Datelike;

use super::BuildError;
use crate::config::Config;
use crate::files;
use crate::problem::Problem;
use crate::render::{self, archive, Entry};

/// What the last build wrote, by what each page was made from.
#[derive(Debug, Default)]
pub struct Written {
    css: u64,
    pages: HashMap<String, u64>,
    years: HashMap<i32, u64>,
}

fn fingerprint(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// What a post's page is made from.
fn page_print(e: &Entry) -> u64 {
    fingerprint((&e.post.hash, e.published, e.updated))
}

/// Writes feeds, index, year and post pages; removes pages of posts no longer published. A
/// post whose page panics while rendering (a bug) is left out of everything, returned as a
/// problem naming its file, and the rest is written.
pub fn write_public(
    root: &Path,
    config: &Config,
    entries: &[Entry],
    written: &mut Written,
) -> Result<Vec<Problem>, BuildError> {
    let css = render::load_css(root).map_err(BuildError::Css)?;
    let css_print = fingerprint(&css);
    if written.css != css_print {
        *written = Written {
            css: css_print,
            ..Written::default()
        };
    }
    let out = Out {
        root,
        public: root.join("public"),
        css,
    };
    let (pages, problems) = out.post_pages(config, entries, written)?;
    // A post whose page could not be made is in no feed and no list either.
    let kept: Vec<Entry>;
    let entries = if problems.is_empty() {
        entries
    } else {
        kept = entries
            .iter()
            .filter(|e| pages.contains_key(&e.post.slug))
            .cloned()
            .collect();
        &kept
    };
    let mut newest: Vec<&Entry> = entries.iter().collect();
    newest.sort_by_key(|e| std::cmp::Reverse(e.published));
    let tz = config.tz();
    let mut by_year: BTreeMap<std::cmp::Reverse<i32>, Vec<&Entry>> = BTreeMap::new();
    for e in &newest {
        let year = e.published.with_timezone(&tz).year();
        by_year.entry(std::cmp::Reverse(year)).or_default().push(e);
    }
    let years: Vec<(i32, usize)> = by_year.iter().map(|(y, es)| (y.0, es.len())).collect();
    // The feeds and the index first: they are what readers and feed fetchers wait for; a
    // year's archive holds every post of the year in full and takes longer.
    let head = &newest[..newest.len().min(archive::INDEX_POSTS)];
    out.write(
        "index.html",
        archive::index_page(config, head, &years, &out.css),
    )?;
    out.write("feed.xml", render::feed::rss(config, entries))?;
    out.write("atom.xml", render::feed::atom(config, entries))?;
    out.write("feed.json", render::feed::json(config, entries))?;
    let year_prints = out.year_pages(config, &by_year, &years, written)?;

    // Pages of posts no longer published, and of years that no longer have posts.
    let gone_posts =
        written.pages.is_empty() || written.pages.keys().any(|s| !pages.contains_key(s));
    if gone_posts {
        remove_stale(&out.public.join("posts"), |stem| pages.contains_key(stem));
    }
    remove_stale(&out.public.join("archive"), |stem| {
        stem.parse()
            .is_ok_and(|y: i32| year_prints.contains_key(&y))
    });
    written.pages = pages;
    written.years = year_prints;
    Ok(problems)
}

/// Where a build writes, and the stylesheet its pages carry.
struct Out<'a> {
    root: &'a Path,
    public: PathBuf,
    css: String,
}

impl Out<'_> {
    /// Writes `public/<rel>`, unless it already holds exactly `body` (no needless fsync, and
    /// Last-Modified stays true).
    fn write(&self, rel: &str, body: String) -> Result<(), BuildError> {
        let path = self.public.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == body.as_bytes()) {
            return Ok(());
        }
        files::write_atomic(&path, body.as_bytes()).map_err(|e| BuildError::Write(path, e))
    }

    /// Each post's pictures, then its page when it changed or is missing; returns the pages
    /// made (slug → print) and the posts that could not be.
    fn post_pages(
        &self,
        config: &Config,
        entries: &[Entry],
        written: &Written,
    ) -> Result<(HashMap<String, u64>, Vec<Problem>), BuildError> {
        let mut pages = HashMap::with_capacity(entries.len());
        let mut problems = Vec::new();
        // One listing instead of a look-up per page: a page removed by hand is written again.
        let on_disk = file_names(&self.public.join("posts"));
        let media_on_disk = file_names(&self.public.join("media"));
        let media_cache = crate::media::cache_dir(self.root);
        let left_out = |e: &Entry, why: String| {
            let p = Problem::new(files::display(&e.post.source), None, why);
            tracing::error!(file = %p.path.display(), "{}", p.message);
            p
        };
        for e in entries {
            // Its pictures first: a page never points at a picture that is not there. Those
            // already in public/media (one listing per build) are not looked up again.
            let names: Vec<&str> = e
                .post
                .pictures
                .iter()
                .map(|p| p.encoded.name.as_str())
                .filter(|n| !media_on_disk.contains(*n))
                .collect();
            if let Err(why) = crate::media::publish(&media_cache, &self.public, &names) {
                let why = format!("its pictures could not be published (will try again): {why}");
                problems.push(left_out(e, why));
                continue;
            }
            let print = page_print(e);
            let name = format!("{}.html", e.post.slug);
            let known = written.pages.get(&e.post.slug) == Some(&print);
            if !known || !on_disk.contains(name.as_str()) {
                let page = super::guarded(&e.post.source, "page", || {
                    archive::post_page(config, e, &self.css)
                });
                match page {
                    Ok(page) => self.write(&format!("posts/{name}"), page)?,
                    Err(why) => {
                        let why = format!(
                            "its page could not be made (a bug in tayori; please report it): {why}"
                        );
                        problems.push(left_out(e, why));
                        continue;
                    }
                }
            }
            pages.insert(e.post.slug.clone(), print);
        }
        Ok((pages, problems))
    }

    /// Each year's page and Atom archive (RFC 5005) when its posts changed or a file is
    /// missing; returns the years' prints.
    fn year_pages(
        &self,
        config: &Config,
        by_year: &BTreeMap<std::cmp::Reverse<i32>, Vec<&Entry>>,
        years: &[(i32, usize)],
        written: &Written,
    ) -> Result<HashMap<i32, u64>, BuildError> {
        let mut year_prints = HashMap::new();
        for (i, (year, list)) in by_year.iter().enumerate() {
            let print = fingerprint((
                years,
                list.iter()
                    .map(|e| (&e.post.slug, &e.post.hash, e.published))
                    .collect::<Vec<_>>(),
            ));
            let rel = format!("archive/{}.html", year.0);
            let xml = format!("archive/{}.xml", year.0);
            let stale = written.years.get(&year.0) != Some(&print);
            let missing = !self.public.join(&rel).exists() || !self.public.join(&xml).exists();
            if stale || missing {
                let page = archive::year_page(config, year.0, list, years, &self.css);
                self.write(&rel, page)?;
                // Years run newest first: the one after is older, the one before newer.
                let older = years.get(i + 1).map(|y| y.0);
                let newer = i.checked_sub(1).map(|j| years[j].0);
                let atom = render::feed::atom_archive(config, year.0, list, older, newer);
                self.write(&xml, atom)?;
            }
            year_prints.insert(year.0, print);
        }
        Ok(year_prints)
    }
}

/// The names of the files in `dir` (none when it cannot be listed: everything is written).
fn file_names(dir: &Path) -> std::collections::HashSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Removes the `.html` and `.xml` files of `dir` whose stem `keep` refuses.
fn remove_stale(dir: &Path, keep: impl Fn(&str) -> bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for f in rd.flatten() {
        let p = f.path();
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if p.extension().is_some_and(|e| e == "html" || e == "xml") && !keep(stem) {
            let _ = std::fs::remove_file(&p);
        }
    }
}
