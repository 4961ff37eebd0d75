//! Nothing leaks and nothing hangs, through the real binary on fresh folders: what `posts/`
//! may hold (symlinks out of it, FIFOs, devices, huge files), a `posts/` or `subscribers/`
//! that is missing, a list with a control byte, a configuration that must not pass, files that
//! hold subscriber data or secrets, and summaries in the RSS feed.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// Runs `tayori` and fails the test if it takes longer than `limit` (a FIFO once froze it).
fn tayori_within(root: &Path, args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Spawned::tayori(root, args, &[]);
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "tayori {args:?} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let child = std::mem::replace(
        &mut child.0,
        std::process::Command::new("true").spawn().unwrap(),
    );
    child.wait_with_output().unwrap()
}

#[test]
fn symlinks_out_of_posts_fifos_and_huge_files_are_reported_and_never_published() {
    let dir = fresh_folder(None);
    let root = dir.path();
    let posts = root.join("posts");
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(
        root.join("state/secret"),
        "0123456789abcdef0123456789abcdef-SECRET",
    )
    .unwrap();
    add_post(root);
    let link =
        |target: &Path, name: &str| std::os::unix::fs::symlink(target, posts.join(name)).unwrap();
    link(Path::new("/etc/passwd"), "passwd.md");
    link(&root.join("tayori.yaml"), "config.txt");
    link(&root.join("state/secret"), "secret.md");
    link(Path::new("/dev/zero"), "zero.md");
    link(&posts.join("2026-11-09-menkai-koryu.md"), "inside.md");
    assert!(std::process::Command::new("mkfifo")
        .arg(posts.join("fifo.md"))
        .status()
        .unwrap()
        .success());
    std::fs::write(posts.join("huge.md"), vec![b'a'; 3 * 1024 * 1024]).unwrap();

    let o = tayori_within(root, &["check"], Duration::from_secs(20));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (file, why) in [
        ("passwd.md", "outside posts/"),
        ("config.txt", "outside posts/"),
        ("secret.md", "outside posts/"),
        ("zero.md", "outside posts/"),
        ("fifo.md", "FIFO"),
        ("huge.md", "2 MiB"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(file) && l.contains(why)),
            "{file}: {why} in {err}"
        );
    }
    assert!(
        !err.contains("inside.md"),
        "a link inside posts/ is a post: {err}"
    );

    let o = tayori_within(root, &["build"], Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let mut published = String::new();
    for f in ["feed.xml", "atom.xml", "index.html"] {
        published.push_str(&std::fs::read_to_string(root.join("public").join(f)).unwrap());
    }
    for leak in ["root:x:0:0", "SECRET", "smtp", "listen:"] {
        assert!(!published.contains(leak), "{leak} published");
    }
    assert!(
        published.contains("面会交流"),
        "the good post is still published"
    );
}

#[test]
fn a_missing_posts_folder_deletes_nothing_and_says_so() {
    let dir = fresh_folder(None);
    let root = dir.path();
    add_post(root);
    assert!(tayori(root, &["build"]).status.success());
    let page = root.join("public/posts/menkai-koryu.html");
    assert!(page.exists());
    std::fs::rename(root.join("posts"), root.join("posts.away")).unwrap();

    let o = tayori(root, &["build"]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("posts") && err.contains("No such file"),
        "{err}"
    );
    assert!(page.exists(), "the archive page stays");
    let feed = std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    assert!(feed.contains("面会交流"), "the feed keeps the post");

    std::fs::rename(root.join("posts.away"), root.join("posts")).unwrap();
    let o = tayori(root, &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("0 new"), "{}", text(&o.stdout));
    std::fs::remove_file(root.join("posts/2026-11-09-menkai-koryu.md")).unwrap();
    assert!(tayori(root, &["build"]).status.success());
    assert!(!page.exists(), "deleting the file on purpose still deletes");
}

#[test]
fn a_control_byte_skips_one_row_and_a_missing_list_folder_makes_no_issue() {
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    add_post(root);
    let csv = root.join("subscribers/clients.csv");
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes.extend_from_slice(b"broken\x07row@example.jp,\xe5\x90\x8d\r\n");
    std::fs::write(&csv, bytes).unwrap();
    let o = tayori(root, &["check"]);
    let err = text(&o.stderr);
    assert!(
        err.contains("clients.csv:") && err.contains("control character"),
        "{err}"
    );
    assert!(
        !err.contains('\x07'),
        "one line per problem, no raw control bytes"
    );

    std::fs::rename(root.join("subscribers"), root.join("subscribers.away")).unwrap();
    let o = tayori(root, &["send"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("subscribers folder is missing"), "{err}");
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("posts waiting for the next issue: menkai-koryu"),
        "{status}"
    );
    assert!(outbox(root).is_empty());

    std::fs::rename(root.join("subscribers.away"), root.join("subscribers")).unwrap();
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        outbox(root).len(),
        5,
        "the good rows of clients.csv and peers.yaml"
    );
}

#[test]
fn an_empty_audience_leaves_the_posts_pending() {
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    add_post(root);
    for f in ["clients.csv", "peers.yaml"] {
        std::fs::remove_file(root.join("subscribers").join(f)).unwrap();
    }
    let o = tayori(root, &["send"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no subscribers"), "{err}");
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(status.contains("none yet"), "no issue made: {status}");
    assert!(status.contains("waiting for the next issue: menkai-koryu"));
}

#[test]
fn check_refuses_values_that_would_hurt_and_never_shows_the_smtp_password() {
    let dir = fresh_folder(Some(
        "smtp:\n  url: smtp://office:hunter2pw@127.0.0.1:99999\n  concurrency: 100000000\nwebhook:\n  url: https://blog.example.jp/hook\n  secret: whsec_not*base64\n",
    ));
    let o = tayori(dir.path(), &["check"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for needle in [
        "smtp.url",
        "invalid port",
        "smtp.concurrency",
        "webhook.secret",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("hunter2pw"), "{err}");

    let dir = fresh_folder(Some(
        "webhook:\n  url: https://blog.example.jp/hook\n  secret: \"\"\n",
    ));
    let err = text(&tayori(dir.path(), &["check"]).stderr);
    assert!(err.contains("webhook.secret: missing"), "{err}");

    // Mail through a relay whose unsubscribe links point at this machine: an error for
    // check, a warning for send.
    let dir = fresh_folder(Some(&smtp_block(2525, 1)));
    let o = tayori(dir.path(), &["check"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("server.public_url") && err.contains("is on this machine"),
        "{err}"
    );
    let o = tayori(dir.path(), &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("WARN"), "{}", text(&o.stderr));
}

#[test]
fn a_short_tayori_secret_is_refused() {
    let dir = fresh_folder(None);
    let o = tayori_env(dir.path(), &["check"], &[("TAYORI_SECRET", "short")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("32 or more"),
        "{}",
        text(&o.stderr)
    );
    let o = tayori_env(dir.path(), &["send"], &[("TAYORI_SECRET", "short")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[cfg(unix)]
#[test]
fn state_the_store_and_outbox_messages_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    add_post(root);
    assert!(tayori(root, &["send"]).status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("state")), 0o700);
    assert_eq!(mode(&root.join("state/tayori.sqlite3")), 0o600);
    assert_eq!(mode(&root.join("state/secret")), 0o600);
    assert_eq!(mode(&root.join("outbox")), 0o700);
    for f in outbox(root) {
        assert_eq!(mode(&root.join("outbox").join(&f)), 0o600, "{f}");
    }
    let secret = std::fs::read_to_string(root.join("state/secret")).unwrap();
    assert_eq!(secret.len(), 64, "32 bytes from the OS generator, in hex");
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
}

#[cfg(unix)]
#[test]
fn init_writes_the_configuration_and_the_list_for_the_office_alone_and_check_warns_when_others_can_read_them(
) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("news");
    let o = tayori(dir.path(), &["init", root.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("tayori.yaml")), 0o600);
    assert_eq!(mode(&root.join("subscribers/readers.csv")), 0o600);
    let o = tayori(&root, &["check"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("warning"), "{}", text(&o.stderr));

    for f in ["tayori.yaml", "subscribers/readers.csv"] {
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = tayori(&root, &["check"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "a warning is not an error: {err}");
    for f in ["tayori.yaml", "subscribers/readers.csv"] {
        assert!(
            err.lines().any(|l| l.contains(f)
                && l.contains("warning: readable by other users (mode 644)")
                && l.contains(&format!("chmod 600 {}", root.join(f).display()))),
            "{f}: {err}"
        );
    }
}

#[test]
fn a_blog_password_or_token_over_plain_http_is_refused_by_check_and_run() {
    let dir = fresh_folder(None);
    let root = dir.path();
    let cfg = std::fs::read_to_string(root.join("tayori.yaml")).unwrap();
    std::fs::write(
        root.join("tayori.yaml"),
        format!("{cfg}wordpress:\n  url: http://blog.example.jp/\n  user: tayori\nmicropub:\n  endpoint: http://blog.example.jp/micropub\n  token: t0ken\n"),
    )
    .unwrap();
    let env = [("TAYORI_WORDPRESS_PASSWORD", "abcd efgh ijkl")];
    let o = tayori_env(root, &["check"], &env);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("wordpress.url: `http://blog.example.jp/` would send the application password in clear text"),
        "{err}"
    );
    assert!(
        err.contains("micropub.endpoint: `http://blog.example.jp/micropub` would send the token in clear text"),
        "{err}"
    );
    let o = tayori_env(root, &["run"], &env);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("clear text"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn rss_summaries_are_text_never_raw_html() {
    let dir = fresh_folder(None);
    let root = dir.path();
    std::fs::write(
        root.join("posts/a.md"),
        "---\ntitle: 要約の確認\nsummary: \"<img src=x onerror=alert(1)><script>alert(2)</script>養育費\"\n---\n本文\n",
    )
    .unwrap();
    assert!(tayori(root, &["build"]).status.success());
    let rss = std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    let description = rss
        .split("<description>")
        .nth(2)
        .and_then(|d| d.split("</description>").next())
        .unwrap();
    assert!(
        !description.contains("<script") && !description.contains("<img"),
        "{description}"
    );
    // The reader, taking <description> as HTML, shows the summary's text as written.
    let parsed = feed_rs::parser::parse(rss.as_bytes()).unwrap();
    let summary = parsed.entries[0].summary.as_ref().unwrap().content.clone();
    assert!(
        summary.contains("&lt;script&gt;") || summary.contains("<script>"),
        "{summary}"
    );
}

#[test]
fn a_long_post_without_headings_is_trimmed_with_the_unsubscribe_link_kept() {
    let dir = fresh_folder(None);
    let root = dir.path();
    assert!(tayori(root, &["build"]).status.success());
    let mut body = String::from("---\ntitle: とても長い記事\n---\n");
    for i in 0..3000 {
        body.push_str(&format!("段落{i}：養育費の算定表について説明します。\n\n"));
    }
    std::fs::write(root.join("posts/long.md"), body).unwrap();
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let eml = std::fs::read_to_string(root.join("outbox").join(&outbox(root)[0])).unwrap();
    // A 2 MiB post would have made a message of megabytes per subscriber.
    assert!(eml.len() < 400_000, "{} bytes", eml.len());
    let html = eml_part(&eml, "text/html");
    assert!(html.len() <= 102_000, "{} bytes of HTML", html.len());
    assert!(
        html.contains("配信を停止する"),
        "the unsubscribe link survives the trim"
    );
    assert!(html.contains("の続きを読む"), "a link to the rest");
}

#[test]
fn copies_a_sync_tool_or_a_second_save_made_are_never_new_posts() {
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    add_post(root);
    let posts = root.join("posts");
    let original = std::fs::read(posts.join("2026-11-09-menkai-koryu.md")).unwrap();
    let edited = String::from_utf8(original.clone()).unwrap() + "\n追記。\n";
    std::fs::write(posts.join("2026-11-09-menkai-koryu (1).md"), &original).unwrap();
    std::fs::write(
        posts.join("2026-11-09-menkai-koryu (Sakura's conflicted copy 2026-11-30).md"),
        &edited,
    )
    .unwrap();
    std::fs::write(
        posts.join("2026-11-09-menkai-koryu (山本 さくら の競合コピー 2026-11-30).md"),
        &edited,
    )
    .unwrap();
    std::fs::write(
        posts.join("2026-11-09-menkai-koryu.sync-conflict-20261130-101010-ABCDEFG.md"),
        &edited,
    )
    .unwrap();
    // A different article that merely ends in (2) is a post like any other.
    std::fs::write(
        posts.join("お知らせ (2).md"),
        "---\ntitle: 二つ目のお知らせ\nslug: oshirase-2\n---\n\n本文。\n",
    )
    .unwrap();

    let o = tayori(root, &["check"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("menkai-koryu (1).md: the same text as"),
        "{err}"
    );
    assert_eq!(err.matches("a copy a sync tool made").count(), 3, "{err}");
    assert!(!err.contains("お知らせ (2).md"), "{err}");

    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    assert!(said.contains("5 sent"), "{said}");
    let feed = std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    assert_eq!(
        feed.matches("<item>").count(),
        2,
        "the article and お知らせ (2): {feed}"
    );
    for f in std::fs::read_dir(&posts).unwrap().flatten() {
        assert!(f.path().exists(), "left alone on disk");
    }
    assert_eq!(std::fs::read_dir(&posts).unwrap().count(), 6);
}

#[cfg(unix)]
#[test]
fn a_fifo_among_the_lists_is_an_unreadable_list_and_never_hangs_anything() {
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    add_post(root);
    let fifo = root.join("subscribers/pipe.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let limit = Duration::from_secs(20);
    let o = tayori_within(root, &["check"], limit);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pipe.csv") && err.contains("not a regular file"),
        "{err}"
    );
    let status = tayori_within(root, &["status"], limit);
    assert!(status.status.success());
    let o = tayori_within(root, &["send"], limit);
    assert_eq!(
        o.status.code(),
        Some(2),
        "no issue from a list that cannot be read"
    );
    assert!(outbox(root).is_empty());
    std::fs::remove_file(&fifo).unwrap();
    let o = tayori_within(root, &["send"], limit);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(outbox(root).len(), 5, "the post waited and went out");
}

/// Resident memory of a process, from /proc (KiB).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn slow_readers_of_a_big_page_cost_a_buffer_each_not_the_page() {
    use std::io::{Read, Write};
    let dir = newsletter_with_smtp(None, 1);
    let root = dir.path();
    let (d, base) = run_daemon(root, &[]);
    // A 20 MB page, put in place as every page is (a rename).
    let page = "<p>大きなページ</p>\n".repeat(20 * 1024 * 1024 / 25);
    let tmp = root.join("public/.big.tmp");
    std::fs::write(&tmp, &page).unwrap();
    std::fs::rename(&tmp, root.join("public/index.html")).unwrap();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let before = rss_kib(d.id());
    // 32 readers (8 per loopback address: the per-client cap) that read the first bytes of
    // the answer — so the server has answered — and then nothing more.
    let mut readers = Vec::new();
    for i in 0..32u8 {
        let mut s = connect_from([127, 0, 0, 2 + i / 8], port);
        write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 64];
        s.read_exact(&mut first).unwrap();
        assert!(
            first.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&first)
        );
        readers.push(s);
    }
    let during = rss_kib(d.id());
    assert!(
        during < before + 150 * 1024,
        "RSS went from {before} KiB to {during} KiB with 32 slow readers of a 20 MB page"
    );
    drop(readers);
}

/// A blocking TCP connection to 127.0.0.1:`port` from the loopback address `from`.
fn connect_from(from: [u8; 4], port: u16) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let tcp = tcp.into_std().unwrap();
        tcp.set_nonblocking(false).unwrap();
        tcp
    })
}
