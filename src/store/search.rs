//! The search index's rows: one normalised document per published post. What goes into a
//! document and how a query matches is decided by the `search` stage; this only keeps them.

use std::collections::HashMap;

use rusqlite::params;

use super::{sql, Store, StoreError};

/// One post as the search index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDoc {
    pub slug: String,
    /// The post's revision the document was made from.
    pub hash: String,
    pub title: String,
    pub url: String,
    /// RFC 3339; results are newest first.
    pub published_at: String,
    /// The normalised text searched (title, tags, body, editor's note).
    pub body: String,
}

impl Store {
    /// The revision each indexed post was indexed at.
    pub fn indexed_revisions(&self) -> Result<HashMap<String, String>, StoreError> {
        Ok(self
            .rows("SELECT slug, hash FROM search_docs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect())
    }

    /// Writes `docs` and removes the documents of `gone` slugs, in one transaction.
    pub fn update_search_index(
        &self,
        docs: &[SearchDoc],
        gone: &[String],
    ) -> Result<(), StoreError> {
        let p = self.path.clone();
        // `&self`, as every publishing write: the store has one connection and no
        // transaction is open across this call.
        let tx = self.conn.unchecked_transaction().map_err(|e| sql(&p, e))?;
        for d in docs {
            tx.execute(
                "INSERT OR REPLACE INTO search_docs (slug, hash, title, url, published_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![d.slug, d.hash, d.title, d.url, d.published_at, d.body],
            )
            .map_err(|e| sql(&p, e))?;
        }
        for slug in gone {
            tx.execute("DELETE FROM search_docs WHERE slug = ?1", [slug])
                .map_err(|e| sql(&p, e))?;
        }
        tx.commit().map_err(|e| sql(&p, e))
    }

    /// Every document containing each of `terms` (already normalised), newest first, at most
    /// `limit`. SQLite's `instr` finds a substring of any length, so two-character Japanese
    /// words (離婚, 親権) match as well as long ones; the terms are parameters, never SQL.
    pub fn search(&self, terms: &[String], limit: usize) -> Result<Vec<SearchDoc>, StoreError> {
        let mut query = String::from(
            "SELECT slug, hash, title, url, published_at, body FROM search_docs WHERE 1",
        );
        for i in 1..=terms.len() {
            query.push_str(&format!(" AND instr(body, ?{i}) > 0"));
        }
        query.push_str(&format!(" ORDER BY published_at DESC LIMIT {limit}"));
        self.rows(&query, rusqlite::params_from_iter(terms.iter()), |r| {
            Ok(SearchDoc {
                slug: r.get(0)?,
                hash: r.get(1)?,
                title: r.get(2)?,
                url: r.get(3)?,
                published_at: r.get(4)?,
                body: r.get(5)?,
            })
        })
    }
}
