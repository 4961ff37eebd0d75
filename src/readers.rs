//! How many people read the feeds, without tracking anyone: feed fetchers that poll on behalf
//! of many readers say how many in their `User-Agent` (`Feedly/1.0 (…; 219 subscribers; …)`,
//! Inoreader, NewsBlur, The Old Reader, Feedbin, Netvibes…). The latest count of each fetcher
//! for each feed over the last 7 days, summed, is the number `status` and the reports show.
//! Nothing about a reader is kept: only the fetcher's name, the feed and the number.

/// What a fetcher's `User-Agent` says: who it is (with the feed id it gives, if any) and for
/// how many subscribers it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherCount {
    pub fetcher: String,
    pub subscribers: u64,
}

/// The count in a fetcher's `User-Agent`, if it gives one: a number followed by
/// `subscriber(s)` or `reader(s)`. The fetcher is named by its product token (the one inside
/// `compatible; …` for `Mozilla/5.0` ones) and its `feed-id`/`feedID`, when it gives one —
/// a service that fetches two of our feeds counts each feed's readers.
pub fn parse_user_agent(ua: &str) -> Option<FetcherCount> {
    let ua = ua.trim();
    if ua.len() > 512 {
        return None;
    }
    let subscribers = count(ua)?;
    let mut fetcher = product(ua)?;
    if let Some(id) = feed_id(ua) {
        fetcher = format!("{fetcher} feed-id:{id}");
    }
    Some(FetcherCount {
        fetcher,
        subscribers,
    })
}

/// The number before `subscribers`/`readers` (`219 subscribers`, `1 subscriber`).
fn count(ua: &str) -> Option<u64> {
    let lower = ua.to_ascii_lowercase();
    for word in ["subscriber", "reader"] {
        for (at, _) in lower.match_indices(word) {
            let before = lower[..at].trim_end();
            let digits: String = before
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if let Ok(n) = digits.parse::<u64>() {
                // A claim of more than a million readers is not believed.
                return (n <= 1_000_000).then_some(n);
            }
        }
    }
    None
}

/// The fetcher's name: the first product token, or the one after `compatible;`.
fn product(ua: &str) -> Option<String> {
    let first = ua.split([' ', '/', '(', ';']).next()?.trim();
    let name = if first.eq_ignore_ascii_case("mozilla") {
        let inside = ua.split_once("compatible;")?.1;
        inside.split([';', ')', '/']).next()?.trim()
    } else {
        first
    };
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(40)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `feed-id:1234`, `feed-id=1234`, `feedID: 1234` or NewsBlur's `/site/1234/`.
fn feed_id(ua: &str) -> Option<String> {
    let lower = ua.to_ascii_lowercase();
    let at = ["feed-id", "feedid", "/site/"]
        .iter()
        .find_map(|k| lower.find(k).map(|i| i + k.len()))?;
    let id: String = ua[at..]
        .trim_start_matches([':', '=', ' '])
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// How far back counts are taken.
pub use crate::store::READERS_WINDOW as WINDOW;

/// The feed readers: the latest count of each fetcher for each feed over [`WINDOW`], summed.
pub fn total(store: &crate::store::Store) -> Result<u64, crate::store::StoreError> {
    let since = chrono::Utc::now() - WINDOW;
    Ok(store
        .feed_fetchers(since)?
        .iter()
        .map(|f| f.subscribers)
        .sum())
}

/// Records the count in `user_agent`, if it gives one, for `feed` (`feed.xml`…), in the store
/// of `root` when there is one. Called off the runtime by the feed handlers.
pub fn record(
    root: &std::path::Path,
    feed: &str,
    user_agent: &str,
) -> Result<(), crate::store::StoreError> {
    let Some(c) = parse_user_agent(user_agent) else {
        return Ok(());
    };
    // `serve` on a folder never published has no store, and a feed fetch does not make one.
    if !crate::store::path_in(root).exists() {
        return Ok(());
    }
    let store = crate::store::Store::open(root)?;
    store.record_feed_fetch(&c.fetcher, feed, c.subscribers, chrono::Utc::now())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(ua: &str) -> (String, u64) {
        let c = parse_user_agent(ua).unwrap_or_else(|| panic!("{ua}"));
        (c.fetcher, c.subscribers)
    }

    #[test]
    fn real_fetchers_say_how_many_they_fetch_for() {
        assert_eq!(
            parsed("Feedly/1.0 (+http://www.feedly.com/fetcher.html; 219 subscribers; like FeedFetcher-Google)"),
            ("Feedly".into(), 219)
        );
        assert_eq!(
            parsed("Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher; 12 subscribers; )"),
            ("Inoreader".into(), 12)
        );
        assert_eq!(
            parsed("NewsBlur Feed Fetcher - 24 subscribers - https://www.newsblur.com/site/6091451/example (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.1 Safari/605.1.15)"),
            ("NewsBlur feed-id:6091451".into(), 24)
        );
        assert_eq!(
            parsed("Mozilla/5.0 (compatible; theoldreader.com; 5 subscribers; feed-id=7a3f9c)"),
            ("theoldreader.com feed-id:7a3f9c".into(), 5)
        );
        assert_eq!(
            parsed("Feedbin feed-id:1373711 - 7 subscribers"),
            ("Feedbin feed-id:1373711".into(), 7)
        );
        assert_eq!(
            parsed("Feedly/1.0 (+http://www.feedly.com/fetcher.html; 1 subscriber)").1,
            1
        );
    }

    #[test]
    fn browsers_and_fetchers_without_a_count_are_not_counted() {
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "curl/8.5.0",
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; like FeedFetcher-Google)",
            "Feedly/1.0 (99999999999 subscribers)",
            "",
        ] {
            assert_eq!(parse_user_agent(ua), None, "{ua}");
        }
    }
}
