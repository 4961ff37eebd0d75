//! Feed readers counted without tracking anyone: real fetchers' `User-Agent` strings over real
//! HTTP, summed by `status`, listed per fetcher by `status --feeds`.

mod support;

use support::*;

fn fetch(url: &str, user_agent: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tayori::tls::http()
            .user_agent(user_agent)
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

const FEEDLY: &str =
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 219 subscribers; like FeedFetcher-Google)";
const INOREADER: &str =
    "Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher; 12 subscribers; )";
const NEWSBLUR: &str = "NewsBlur Feed Fetcher - 24 subscribers - https://www.newsblur.com/site/6091451/example (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.1 Safari/605.1.15)";

#[test]
fn status_sums_the_latest_count_of_each_fetcher_for_each_feed() {
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    let (_d, base) = run_daemon(root, &[]);
    for ua in [
        FEEDLY,
        INOREADER,
        NEWSBLUR,
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    ] {
        assert_eq!(fetch(&format!("{base}/feed.xml"), ua), 200);
    }
    assert_eq!(
        fetch(
            &format!("{base}/atom.xml"),
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 3 subscribers)"
        ),
        200
    );
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(status.contains("feed readers: 258\n"), "{status}");

    // Feedly comes back with one more subscriber: its latest count replaces the old one.
    fetch(&format!("{base}/feed.xml"), &FEEDLY.replace("219", "220"));
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(status.contains("feed readers: 259\n"), "{status}");
    let feeds = text(&tayori(root, &["status", "--feeds"]).stdout);
    let lines: Vec<&str> = feeds.lines().collect();
    assert!(lines[0].starts_with("feed readers: 259"), "{feeds}");
    assert!(lines[1].contains("220  Feedly  feed.xml"), "{feeds}");
    assert!(
        feeds.contains("24  NewsBlur feed-id:6091451  feed.xml"),
        "{feeds}"
    );
    assert!(feeds.contains("12  Inoreader  feed.xml"), "{feeds}");
    assert!(feeds.contains("3  Feedly  atom.xml"), "{feeds}");
    assert_eq!(lines.len(), 5, "the browser is nobody's count: {feeds}");
}
