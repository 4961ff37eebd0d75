//! Searching the archive in Japanese: `GET /search?q=…` (docs/http-and-webhook.md).
//!
//! Japanese runs without spaces, and the words readers look for are often two characters
//! (離婚, 親権, 養育費): a word index finds nothing, and a trigram index cannot match two
//! characters. So every post is kept as one normalised document — NFKC (full- and half-width
//! forms, compatibility characters folded), lower case — and a query matches the documents that
//! contain each of its words as a substring. Measured with `scripts/bench-search`, a scan of
//! 5,000 posts by SQLite's `instr` stays well under the 50 ms target (README, "Benchmarks").
//! The index is kept incrementally by [`sync`]: only posts whose revision changed are written.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

use crate::config::Config;
use crate::render::Entry;
use crate::store::{SearchDoc, Store, StoreError};

/// The longest query taken, in characters; the rest is ignored.
pub const MAX_QUERY_CHARS: usize = 1000;
/// At most this many words count.
const MAX_TERMS: usize = 8;
/// At most this many results are shown.
pub const MAX_RESULTS: usize = 50;

/// Text as the index compares it: NFKC, lower case, runs of white space as one space.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The words of a query, normalised: several words mean all of them.
pub fn terms(query: &str) -> Vec<String> {
    let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
    let mut seen = HashSet::new();
    normalize(&query)
        .split(' ')
        .filter(|t| !t.is_empty() && seen.insert(t.to_string()))
        .take(MAX_TERMS)
        .map(str::to_string)
        .collect()
}

/// The document of one published post: title, tags, summary, body and editor's note.
pub fn document(config: &Config, entry: &Entry) -> SearchDoc {
    let p = &entry.post;
    let mut text = vec![p.title.clone(), p.tags.join(" ")];
    text.extend(p.summary.clone());
    text.push(p.lead.text.clone());
    for s in &p.sections {
        text.push(s.title.clone());
        text.push(s.body.text.clone());
    }
    text.extend(p.editors_note.as_ref().map(|n| n.text.clone()));
    SearchDoc {
        slug: p.slug.clone(),
        hash: p.hash.clone(),
        title: p.title.clone(),
        url: config.post_url(&p.slug),
        published_at: entry.published.with_timezone(&chrono::Utc).to_rfc3339(),
        body: normalize(&text.join(" ")),
    }
}

/// Brings the index in line with the published `entries`: (re)indexes posts whose revision
/// it does not have and drops posts no longer published. One query when nothing changed.
pub fn sync(config: &Config, store: &Store, entries: &[Entry]) -> Result<usize, StoreError> {
    let indexed = store.indexed_revisions()?;
    let docs: Vec<SearchDoc> = entries
        .iter()
        .filter(|e| indexed.get(&e.post.slug) != Some(&e.post.hash))
        .map(|e| document(config, e))
        .collect();
    let live: HashSet<&str> = entries.iter().map(|e| e.post.slug.as_str()).collect();
    let gone: Vec<String> = indexed
        .keys()
        .filter(|s| !live.contains(s.as_str()))
        .cloned()
        .collect();
    if !docs.is_empty() || !gone.is_empty() {
        store.update_search_index(&docs, &gone)?;
    }
    Ok(docs.len() + gone.len())
}

/// One result: the post and the passage around the first word's first match.
#[derive(Debug, Clone)]
pub struct Hit {
    pub title: String,
    pub url: String,
    pub published_at: String,
    pub passage: String,
}

/// The posts containing every word of `query`, newest first: at most [`MAX_RESULTS`], and
/// whether there were more.
pub fn search(store: &Store, query: &str) -> Result<(Vec<Hit>, bool), StoreError> {
    let terms = terms(query);
    if terms.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut docs = store.search(&terms, MAX_RESULTS + 1)?;
    let more = docs.len() > MAX_RESULTS;
    docs.truncate(MAX_RESULTS);
    let hits = docs
        .into_iter()
        .map(|d| Hit {
            passage: passage(&d.body, &terms[0]),
            title: d.title,
            url: d.url,
            published_at: d.published_at,
        })
        .collect();
    Ok((hits, more))
}

/// About 40 characters either side of the first occurrence of `term` in `body`.
fn passage(body: &str, term: &str) -> String {
    const AROUND: usize = 40;
    let Some(at) = body.find(term) else {
        return body.chars().take(2 * AROUND).collect();
    };
    let before: Vec<char> = body[..at].chars().rev().take(AROUND).collect();
    let after: String = body[at..]
        .chars()
        .take(term.chars().count() + AROUND)
        .collect();
    let start: String = before.into_iter().rev().collect();
    let lead = if start.len() < at { "…" } else { "" };
    let tail = if at + after.len() < body.len() {
        "…"
    } else {
        ""
    };
    format!("{lead}{start}{after}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_half_width_forms_and_case_fold_to_one() {
        assert_eq!(normalize("ＤＶ　と　ｶﾀｶﾅ"), "dv と カタカナ");
        assert_eq!(terms("離婚　親権 離婚"), vec!["離婚", "親権"]);
        assert_eq!(terms("   "), Vec::<String>::new());
        assert_eq!(terms(&"あ".repeat(1000)).len(), 1);
        assert_eq!(
            terms(&"あ".repeat(1000))[0].chars().count(),
            MAX_QUERY_CHARS
        );
    }

    #[test]
    fn the_passage_is_cut_on_character_boundaries_around_the_word() {
        let body = format!("{}養育費の算定{}", "前".repeat(100), "後".repeat(100));
        let p = passage(&body, "養育費");
        assert!(p.starts_with('…') && p.ends_with('…'), "{p}");
        assert!(p.contains("養育費の算定"));
        assert_eq!(passage("短い養育費", "養育費"), "短い養育費");
    }
}
