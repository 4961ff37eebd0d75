//! Features no other test walked, each through the real binary: PIPELINING against Postfix's
//! smtp-sink, `max_per_second`, `lists:` narrowing the audience, `send --dry-run`, a tick missed
//! while the daemon was down, a webhook answered 410, and a store migrated from an older schema.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
#[ignore = "needs Postfix's smtp-sink: scripts/test unpacks it and runs ignored tests"]
fn a_server_offering_pipelining_gets_the_envelope_pipelined() {
    let sink = std::env::var("TAYORI_SMTP_SINK").expect("TAYORI_SMTP_SINK (scripts/test)");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _sink = Spawned(
        Command::new(&sink)
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "64"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("smtp-sink listening", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = fresh_folder(Some(&smtp_block(port, 2)));
    assert!(tayori(dir.path(), &["build"]).status.success());
    many_subscribers(dir.path(), 195);
    add_post(dir.path());
    let o = tayori_env(dir.path(), &["send"], &[("TAYORI_LOG", "tayori=debug")]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        text(&o.stdout).contains("200 sent, 0 failed"),
        "{}",
        text(&o.stdout)
    );
    assert!(err.contains("pipelining=true"), "{err}");
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn max_per_second_holds_over_all_connections() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = fresh_folder(Some(&format!(
        "{}  max_per_second: 10\n",
        smtp_block(server.port, 4)
    )));
    assert!(tayori(dir.path(), &["build"]).status.success());
    many_subscribers(dir.path(), 25);
    add_post(dir.path());
    let o = tayori(dir.path(), &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut at: Vec<f64> = server
        .received()
        .iter()
        .map(|m| m["at"].as_f64().unwrap())
        .collect();
    at.sort_by(f64::total_cmp);
    assert_eq!(at.len(), 30);
    // A burst of 10, then 10 a second: the last 20 take at least 1.9 s to arrive.
    let spread = at[29] - at[9];
    assert!(
        spread >= 1.8,
        "30 messages within {spread:.2}s after the burst"
    );
}

#[test]
fn a_post_for_some_lists_goes_only_to_them() {
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    std::fs::write(
        root.join("posts/peers-only.md"),
        "---\ntitle: 士業の皆さまへ\nlists: [peers]\n---\n本文\n",
    )
    .unwrap();
    let dry = tayori(root, &["send", "--dry-run"]);
    assert!(dry.status.success());
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let peers = std::fs::read_to_string(fixtures().join("subscribers/peers.yaml")).unwrap();
    let sent = outbox(root);
    assert!(!sent.is_empty());
    for f in &sent {
        let address = f.split_once('-').unwrap().1.trim_end_matches(".eml");
        assert!(
            peers.to_lowercase().contains(address),
            "{address} is not on peers"
        );
    }
}

#[test]
fn dry_run_says_what_would_go_out_and_changes_nothing() {
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    add_post(root);
    let before = std::fs::read(root.join("state/tayori.sqlite3")).unwrap();
    let o = tayori(root, &["send", "--dry-run"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.contains("a new issue 「面会交流のルールを決めるときに考えておきたいこと」 of 1 post(s) to 5 subscribers"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(root.join("state/tayori.sqlite3")).unwrap(),
        before
    );
    assert!(outbox(root).is_empty());
    let fresh = fresh_folder(None);
    let o = tayori(fresh.path(), &["send", "--dry-run"]);
    assert!(
        text(&o.stdout).contains("first start"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        !fresh.path().join("state").exists(),
        "a dry run creates no store"
    );
}

#[test]
fn a_tick_missed_while_stopped_is_caught_up_once_at_start() {
    let dir = fresh_folder(None);
    let root = dir.path();
    // Once a year: the next tick is months away, so only the catch-up can send.
    let cfg = std::fs::read_to_string(root.join("tayori.yaml"))
        .unwrap()
        .replace("schedule: \"0 9 * * Mon\"", "schedule: \"0 9 1 1 *\"");
    std::fs::write(root.join("tayori.yaml"), cfg).unwrap();
    assert!(tayori(root, &["build"]).status.success());
    add_post(root);
    assert!(tayori(root, &["build"]).status.success());
    last_tick_long_ago(root);
    let (d, _) = run_daemon(root, &[]);
    wait_for("the caught-up issue", Duration::from_secs(20), || {
        outbox(root).len() == 5
    });
    drop(d);
    // A second start has nothing to catch up.
    let (d, _) = run_daemon(root, &[]);
    std::thread::sleep(Duration::from_millis(500));
    drop(d);
    assert_eq!(outbox(root).len(), 5);
    let status = text(&tayori(root, &["status"]).stdout);
    assert_eq!(status.matches("#").count(), 1, "one issue: {status}");
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn a_webhook_answered_410_is_not_retried() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = WebhookReceiver::start(secret, &["--gone"]);
    let port = receiver.port;
    let dir = fresh_folder(Some(&format!(
        "webhook:\n  url: http://127.0.0.1:{port}/hook\n  secret: {secret}\n"
    )));
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    let (d, _) = run_daemon(root, &[("TAYORI_WEBHOOK_FIRST_RETRY_MS", "50")]);
    add_post(root);
    let received = || {
        std::fs::read_to_string(receiver.dir.path().join("hooks.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("the first attempt", Duration::from_secs(20), || {
        received() >= 1
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(d);
    assert_eq!(received(), 1, "410 Gone stops the retries");
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("gone") && status.contains("attempts: 410"),
        "{status}"
    );
}

#[test]
fn a_store_from_an_older_schema_is_migrated_and_keeps_its_rows() {
    let dir = fresh_folder(None);
    let root = dir.path();
    std::fs::create_dir_all(root.join("state")).unwrap();
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    for (i, m) in tayori::store::MIGRATIONS.iter().take(3).enumerate() {
        db.execute_batch(m).unwrap();
        db.pragma_update(None, "user_version", (i + 1) as i64)
            .unwrap();
    }
    db.execute(
        "INSERT INTO suppressions (address, reason, at) VALUES ('gone@example.jp', 'unsubscribed', '2026-01-01T00:00:00+00:00')",
        [],
    )
    .unwrap();
    // A webhook event queued under the queue's old table name, with an attempt.
    db.execute_batch(
        "INSERT INTO webhook_events (id, event, slug, body, created_at, next_attempt_at, state)
           VALUES ('evt_old', 'post.published', 'old', '{}', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 'gone');
         INSERT INTO webhook_attempts (event_id, at, status) VALUES ('evt_old', '2026-01-01T00:00:00+00:00', '410');",
    )
    .unwrap();
    drop(db);
    let o = tayori(root, &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, tayori::store::MIGRATIONS.len());
    let attempts: i64 = db
        .query_row(
            "SELECT count(*) FROM crosspost_events JOIN crosspost_attempts ON event_id = id WHERE id = 'evt_old'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        attempts, 1,
        "the queued event and its attempt keep their rows"
    );
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(status.contains("gone@example.jp"), "{status}");
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn carriers_are_paced_on_lanes_of_their_own_and_the_rest_is_not_slowed() {
    let server = SmtpServer::start(&python(), &[]);
    // Faster than the built-in defaults (60 a minute), so that the test takes seconds.
    let pacing = "pacing:\n  docomo.ne.jp: { connections: 1, per_minute: 600, per_connection: 40 }\n  \"ezweb.ne.jp, au.com\": { connections: 1, per_minute: 600, per_connection: 40 }\n";
    let dir = fresh_folder(Some(&format!("{}{pacing}", smtp_block(server.port, 4))));
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    let mut csv = String::from("email,name\n");
    for i in 0..1700 {
        csv.push_str(&format!("reader{i}@example.test,\n"));
    }
    for i in 0..100 {
        csv.push_str(&format!("d{i}@docomo.ne.jp,\n"));
        let au = if i % 2 == 0 { "ezweb.ne.jp" } else { "au.com" };
        csv.push_str(&format!("a{i}@{au},\n"));
    }
    std::fs::write(root.join("subscribers/many.csv"), csv).unwrap();
    add_post(root);
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1905 sent, 0 failed"),
        "{}",
        text(&o.stdout)
    );

    let received = server.received();
    let group = |m: &serde_json::Value| {
        let rcpt = m["rcpt"][0].as_str().unwrap().to_string();
        if rcpt.ends_with("@docomo.ne.jp") {
            "docomo"
        } else if rcpt.ends_with("@ezweb.ne.jp") || rcpt.ends_with("@au.com") {
            "au"
        } else {
            "other"
        }
    };
    let times = |g: &str| -> Vec<f64> {
        let mut t: Vec<f64> = received
            .iter()
            .filter(|m| group(m) == g)
            .map(|m| m["at"].as_f64().unwrap())
            .collect();
        t.sort_by(f64::total_cmp);
        t
    };
    for g in ["docomo", "au"] {
        let t = times(g);
        assert_eq!(t.len(), 100, "{g}");
        let span = t[99] - t[0];
        // 600 a minute, one at a time: at least 99 gaps of 0.1 s.
        assert!(span >= 9.0, "{g}: 100 messages within {span:.1}s");
        // One connection at a time, a new one every 40 messages.
        let mut conns: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
        for m in received.iter().filter(|m| group(m) == g) {
            let port = m["peer"][1].as_u64().unwrap();
            let at = m["at"].as_f64().unwrap();
            let e = conns.entry(port).or_insert((at, at));
            e.0 = e.0.min(at);
            e.1 = e.1.max(at);
        }
        assert_eq!(conns.len(), 3, "{g}: connections {conns:?}");
        let mut spans: Vec<(f64, f64)> = conns.values().copied().collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "{g}: overlapping connections {spans:?}"
        );
    }
    let other = times("other");
    assert_eq!(other.len(), 1705);
    let docomo = times("docomo");
    eprintln!(
        "other domains done {:.1}s after the first message; docomo took {:.1}s",
        other[other.len() - 1] - other[0],
        docomo[99] - docomo[0]
    );
    // Not held up by the carriers: no stall, and far faster than any carrier lane. A carrier
    // lane sends one a second, so a lane waiting behind it would stall for a minute and more;
    // the bounds leave room for a busy machine (2 cores shared with the other tests).
    let stall = other.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(stall < 3.0, "the other domains stalled for {stall:.2}s");
    let rate = (other.len() - 1) as f64 / (other[other.len() - 1] - other[0]);
    assert!(rate >= 30.0, "other domains at {rate:.0} a second");
}

#[test]
fn the_json_feed_has_what_json_feed_1_1_requires_and_the_same_ids_as_rss() {
    let dir = fresh_folder(None);
    let root = dir.path();
    add_post(root);
    std::fs::write(
        root.join("posts/second.md"),
        "---\ntitle: 二つ目\ntags: [離婚]\nsummary: \"<b>太字</b>ではない要約\"\n---\n本文\n",
    )
    .unwrap();
    assert!(tayori(root, &["build"]).status.success());
    let text_json = std::fs::read_to_string(root.join("public/feed.json")).unwrap();
    let feed: serde_json::Value = serde_json::from_str(&text_json).unwrap();
    // Required by the spec: version, title, and per item an id and content.
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(feed["title"], "ワーキングマザー離婚相談室");
    assert!(feed["feed_url"].as_str().unwrap().ends_with("/feed.json"));
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert!(
            item["id"].is_string() && item["content_html"].is_string(),
            "{item}"
        );
        chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().unwrap()).unwrap();
    }
    let second = items.iter().find(|i| i["title"] == "二つ目").unwrap();
    assert_eq!(
        second["summary"], "<b>太字</b>ではない要約",
        "the summary is text, as written"
    );
    assert_eq!(second["tags"][0], "離婚");
    // The same ids as the RSS feed, and an independent parser reads it.
    let rss = std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    let ids = |xml: &[u8]| -> Vec<String> {
        let mut v: Vec<String> = feed_rs::parser::parse(xml)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(text_json.as_bytes()), ids(rss.as_bytes()));
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn websub_hubs_are_named_in_every_feed_and_pinged_per_change_with_retries() {
    use std::io::{BufRead, BufReader};
    let out = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/websub_hub.py");
    let mut hub = Spawned(
        Command::new(python())
            .arg(&script)
            .arg(out.path())
            .args(["--fail-first", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let hub_url = format!(
        "http://127.0.0.1:{}/hub",
        line.trim().strip_prefix("PORT ").unwrap()
    );
    let dir = fresh_folder(Some(&format!("websub:\n  hubs: [\"{hub_url}\"]\n")));
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    let (d, _) = run_daemon(root, &[("TAYORI_WEBHOOK_FIRST_RETRY_MS", "100")]);
    add_post(root);
    let pings = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(out.path().join("pings.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // One ping per feed; the hub refuses the first two, and they are retried.
    wait_for(
        "a ping for each feed, through the retries",
        Duration::from_secs(20),
        || pings().iter().filter(|p| p["status"] == 204).count() == 3,
    );
    drop(d);
    let all = pings();
    assert!(all.iter().all(|p| p["valid"] == true), "{all:?}");
    assert_eq!(all.len(), 5, "3 feeds, 2 refusals retried: {all:?}");
    let mut urls: Vec<&str> = all
        .iter()
        .filter(|p| p["status"] == 204)
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:8080/atom.xml",
            "http://127.0.0.1:8080/feed.json",
            "http://127.0.0.1:8080/feed.xml"
        ]
    );
    for f in ["feed.xml", "atom.xml", "feed.json"] {
        let text = std::fs::read_to_string(root.join("public").join(f)).unwrap();
        assert!(
            text.contains(&hub_url) && text.contains("hub"),
            "{f} names the hub"
        );
    }
}
