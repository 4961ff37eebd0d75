//! The counts feed fetchers give (see the `readers` stage): the latest per fetcher and feed.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{sql, Store, StoreError};

/// How far back counts are taken: a count older than this is pruned.
pub const WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// At most this many fetchers are remembered over the window: a stranger making up names
/// cannot grow the table without bound.
const MAX_FETCHERS: i64 = 200;

/// One fetcher's latest count for one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedFetcher {
    pub fetcher: String,
    /// `feed.xml`, `atom.xml` or `feed.json`.
    pub feed: String,
    pub subscribers: u64,
    pub seen_at: String,
}

impl Store {
    /// Records what a fetcher said now; returns false when the table is full and the fetcher
    /// is new (nothing written).
    pub fn record_feed_fetch(
        &self,
        fetcher: &str,
        feed: &str,
        subscribers: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Counts older than the window are nobody's any more: they neither count nor take a
        // place under the cap (strangers' made-up names age out).
        let window_start = (now - WINDOW).to_rfc3339();
        self.conn
            .execute(
                "DELETE FROM feed_fetchers WHERE seen_at < ?1",
                [&window_start],
            )
            .map_err(|e| sql(&self.path, e))?;
        let written = self
            .conn
            .execute(
                "INSERT INTO feed_fetchers (fetcher, feed, subscribers, seen_at)
                 SELECT ?1, ?2, ?3, ?4
                 WHERE EXISTS (SELECT 1 FROM feed_fetchers WHERE fetcher = ?1 AND feed = ?2)
                    OR (SELECT count(*) FROM feed_fetchers) < ?5
                 ON CONFLICT (fetcher, feed) DO UPDATE
                 SET subscribers = excluded.subscribers, seen_at = excluded.seen_at",
                params![
                    fetcher,
                    feed,
                    subscribers as i64,
                    now.to_rfc3339(),
                    MAX_FETCHERS
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(written > 0)
    }

    /// Every fetcher's latest count seen since `since`, largest first.
    pub fn feed_fetchers(&self, since: DateTime<Utc>) -> Result<Vec<FeedFetcher>, StoreError> {
        self.rows(
            "SELECT fetcher, feed, subscribers, seen_at FROM feed_fetchers
             WHERE seen_at >= ?1 ORDER BY subscribers DESC, fetcher, feed",
            [since.to_rfc3339()],
            |r| {
                Ok(FeedFetcher {
                    fetcher: r.get(0)?,
                    feed: r.get(1)?,
                    subscribers: r.get::<_, i64>(2)?.max(0) as u64,
                    seen_at: r.get(3)?,
                })
            },
        )
    }
}
