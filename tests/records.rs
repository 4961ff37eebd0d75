//! The record the bar's rules ask a law office to keep of each issue (業務広告規程 第11条),
//! through the real binary: `tayori record` after a reader unsubscribed and their consent
//! record was purged, and the purge of records older than `records.keep`.

mod support;

use support::*;

fn db(root: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap()
}

#[test]
fn record_lists_every_recipient_even_after_an_unsubscribe_and_the_consent_purge() {
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    add_post(root);
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Hanako unsubscribes, and 40 days pass: the next issue purges her consent record.
    let o = tayori(root, &["subscribers", "remove", "hanako.sato@example.jp"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let long_ago = (chrono::Utc::now() - chrono::TimeDelta::days(40)).to_rfc3339();
    let db = db(root);
    db.execute("UPDATE suppressions SET at = ?1", [&long_ago])
        .unwrap();
    db.execute("UPDATE deliveries SET updated_at = ?1", [&long_ago])
        .unwrap();
    std::fs::write(
        root.join("posts/2026-11-20-next.md"),
        "---\ntitle: 次の記事\n---\n\n本文です。\n",
    )
    .unwrap();
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let hashed: i64 = db
        .query_row(
            "SELECT count(*) FROM suppressions WHERE address LIKE 'sha256:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hashed, 1, "her consent record was purged");

    let out = tempfile::tempdir().unwrap();
    let o = tayori(
        root,
        &["record", "1", "--out", out.path().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(out.path().join("issue-1-recipients.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "email,name,state,sent_at,reply");
    assert_eq!(rows.len(), 6, "five recipients: {csv}");
    let hanako = rows
        .iter()
        .find(|r| r.starts_with("hanako.sato@example.jp,"))
        .unwrap_or_else(|| panic!("the unsubscribed reader stays in the record: {csv}"));
    assert!(hanako.contains(",佐藤 花子,sent,20"), "{hanako}");
    let eml = std::fs::read_to_string(out.path().join("issue-1.eml")).unwrap();
    assert!(
        eml.contains("Feedback-ID: 1:newsletter:tayori:example.jp"),
        "{eml}"
    );
    assert!(
        eml.contains("To: =?utf-8?"),
        "addressed to the sample reader: {eml}"
    );
    assert!(eml.contains("reader@example.invalid"));
    let html = std::fs::read_to_string(out.path().join("issue-1.html")).unwrap();
    assert!(
        html.contains("面会交流") && html.contains("第二東京弁護士会"),
        "{html}"
    );
    assert!(
        !html.contains("%%TAYORI"),
        "personalised for the sample reader"
    );

    let o = tayori(root, &["record", "9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no issue 9"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn records_older_than_records_keep_are_purged_at_the_next_issue() {
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    let cfg = root.join("tayori.yaml");
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{yaml}records:\n  keep: 30d\n")).unwrap();
    add_post(root);
    assert!(tayori(root, &["send"]).status.success());
    // Issue 1 was made 31 days ago: in the store and in issues.log alike (the log is how a
    // restored store is told from the real one).
    let old = (chrono::Utc::now() - chrono::TimeDelta::days(31)).to_rfc3339();
    let db = db(root);
    let made: String = db
        .query_row("SELECT created_at FROM issues WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute("UPDATE issues SET created_at = ?1 WHERE id = 1", [&old])
        .unwrap();
    let log = root.join("issues.log");
    let journal = std::fs::read_to_string(&log).unwrap();
    let stamp = journal.lines().next().unwrap().split('\t').nth(2).unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(stamp).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&made).unwrap()
    );
    std::fs::write(&log, journal.replace(stamp, &old)).unwrap();
    std::fs::write(
        root.join("posts/2026-11-20-next.md"),
        "---\ntitle: 次の記事\n---\n\n本文です。\n",
    )
    .unwrap();
    assert!(tayori(root, &["send"]).status.success());
    let o = tayori(root, &["record", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("purged after records.keep"),
        "{}",
        text(&o.stderr)
    );
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM deliveries WHERE issue_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "its recipients are gone too");
    let out = tempfile::tempdir().unwrap();
    let o = tayori(
        root,
        &["record", "2", "--out", out.path().to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "the newer issue is kept: {}",
        text(&o.stderr)
    );
}
