//! Pictures: a phone photo beside a Markdown post and a chart inside a Word document reach the
//! email, the archive, the feeds and WordPress — resized, upright, and without the EXIF, GPS,
//! XMP, ICC or comment the phone wrote; a missing, oversized, bomb-like or escaping picture
//! keeps its post from going out and is named by `check` and `status`; an edited picture
//! updates its post.
//!
//! Photos and Word files are made by Pillow, python-docx and LibreOffice (`TAYORI_PYTHON`,
//! `soffice`); served pictures are read back by Pillow.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{fresh_folder, tayori, text, SmtpServer};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pictures.py")
}

/// Runs `pictures.py ARGS…` with the test venv's Python; its standard output.
fn pictures_py(args: &[&str]) -> String {
    support::run_ok(Command::new(support::python()).arg(script()).args(args))
}

/// Pillow's reading of a picture file: format, size, metadata found.
fn inspect(path: &Path) -> serde_json::Value {
    serde_json::from_str(&pictures_py(&["inspect", path.to_str().unwrap()])).unwrap()
}

/// A noisy picture of `width` × `height`, encoded as `format` (by the `image` crate: tests
/// that need no Python).
fn picture(width: u32, height: u32, seed: u8, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(seed),
            (y as u8).wrapping_add(seed),
            ((x ^ y) as u8).wrapping_mul(7),
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap();
    out
}

fn write_post(root: &Path, name: &str, title: &str, body: &str) {
    let path = root.join("posts").join(name);
    let tmp = root.join("posts/.drop.tmp");
    std::fs::write(&tmp, format!("---\ntitle: {title}\n---\n\n{body}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Every `<img …>` tag of `html`.
fn img_tags(html: &str) -> Vec<String> {
    html.match_indices("<img ")
        .map(|(i, _)| html[i..i + html[i..].find('>').unwrap() + 1].to_string())
        .collect()
}

/// One attribute of a tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(tag[start..start + tag[start..].find('"')?].to_string())
}

/// A folder whose server listens on (and links to) a free port of its own, with the store
/// made: posts dropped after this are new.
fn folder_on_port(smtp: Option<&str>) -> (tempfile::TempDir, String) {
    let dir = fresh_folder(smtp);
    let port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let cfg = dir.path().join("tayori.yaml");
    let yaml = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        .replace(
            "public_url: http://127.0.0.1:8080",
            &format!("public_url: {base}"),
        );
    std::fs::write(&cfg, yaml).unwrap();
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (dir, base)
}

/// The hidden acceptance's folder: a 4,000 × 3,000 phone photo (EXIF orientation 6: the phone
/// was held upright) with GPS beside a Markdown post, and a chart inside a Word document that
/// python-docx wrote and LibreOffice saved again.
fn pictured_folder(smtp: Option<&str>) -> (tempfile::TempDir, String) {
    let (dir, base) = folder_on_port(smtp);
    let root = dir.path();
    let photo = root.join("posts/entrance.jpg");
    pictures_py(&["photo", photo.to_str().unwrap(), "4000", "3000", "6"]);
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "新しい事務所の入口です。\n\n![事務所の入口](entrance.jpg)\n\n駅から徒歩5分です。",
    );
    let work = tempfile::tempdir().unwrap();
    let chart = work.path().join("chart.png");
    let docx = work.path().join("2026-11-30-santei.docx");
    pictures_py(&["chart", chart.to_str().unwrap()]);
    pictures_py(&[
        "docx",
        docx.to_str().unwrap(),
        chart.to_str().unwrap(),
        "養育費算定表（子1人・0〜14歳）",
    ]);
    let saved = work.path().join("lo");
    support::run_ok(
        Command::new("soffice")
            .args(["--headless", "--convert-to", "docx", "--outdir"])
            .arg(&saved)
            .arg(&docx),
    );
    std::fs::copy(
        saved.join("2026-11-30-santei.docx"),
        root.join("posts/2026-11-30-santei.docx"),
    )
    .unwrap();
    (dir, base)
}

/// `tayori serve` on the folder, once it answers.
fn serve(root: &Path, base: &str) -> support::Spawned {
    let server = support::Spawned::tayori(root, &["serve"], &[]);
    support::wait_for("the server", Duration::from_secs(20), || {
        get(&format!("{base}/healthz"), &[]).0 == 200
    });
    server
}

/// A GET: status, headers, body.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = support::http().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.send().await {
            Ok(r) => (
                r.status().as_u16(),
                r.headers().clone(),
                r.bytes().await.unwrap_or_default().to_vec(),
            ),
            Err(_) => (0, Default::default(), Vec::new()),
        }
    })
}

#[test]
#[ignore = "needs Pillow, python-docx, LibreOffice and aiosmtpd: scripts/test installs them and runs ignored tests"]
fn a_phone_photo_and_a_word_chart_reach_mail_feeds_and_server_resized_and_without_their_location() {
    let python = support::python();
    let smtp = SmtpServer::start(&python, &[]);
    let (dir, base) = pictured_folder(Some(&support::smtp_block(smtp.port, 2)));
    let root = dir.path();
    let source = std::fs::metadata(root.join("posts/entrance.jpg"))
        .unwrap()
        .len();
    let before = inspect(&root.join("posts/entrance.jpg"));
    assert!(before["gps"].as_u64().unwrap() > 0, "{before}");

    let started = std::time::Instant::now();
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!("send with two new pictures: {:?}", started.elapsed());

    // The email: absolute URLs with alt, width and height fitted to the 600 px column.
    let received = smtp.received();
    assert!(!received.is_empty());
    let html = received[0]["html"].as_str().unwrap().to_string();
    let imgs = img_tags(&html);
    let ours: Vec<&String> = imgs
        .iter()
        .filter(|t| attr(t, "src").is_some_and(|s| s.starts_with(&format!("{base}/media/"))))
        .collect();
    assert_eq!(ours.len(), 2, "{imgs:?}");
    let photo = ours
        .iter()
        .find(|t| attr(t, "alt").as_deref() == Some("事務所の入口"))
        .expect("the photo with its alt text");
    let chart = ours
        .iter()
        .find(|t| attr(t, "alt").as_deref() == Some("養育費算定表（子1人・0〜14歳）"))
        .expect("the Word chart with its alt text");
    // Upright: the phone held the 4,000 × 3,000 sensor sideways.
    assert_eq!(attr(photo, "width").as_deref(), Some("600"), "{photo}");
    assert_eq!(attr(photo, "height").as_deref(), Some("800"), "{photo}");
    assert_eq!(attr(chart, "width").as_deref(), Some("600"), "{chart}");
    assert_eq!(attr(chart, "height").as_deref(), Some("338"), "{chart}");
    assert!(photo.contains("max-width: 100%"), "{photo}");
    let raw = std::fs::read_to_string(smtp.dir.path().join("raw/0.eml")).unwrap();
    assert!(
        !raw.contains("cid:") && !raw.contains("image/jpeg"),
        "no attachment"
    );
    assert!(raw.len() < 100_000, "the message is {} bytes", raw.len());

    // The server: the picture at 1,200 px, no metadata left, cached for a year, 304.
    let _server = serve(root, &base);
    let url = attr(photo, "src").unwrap();
    let (status, headers, bytes) = get(&url, &[]);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert_eq!(get(&url, &[("if-none-match", &etag)]).0, 304);
    let served = root.join("served.jpg");
    std::fs::write(&served, &bytes).unwrap();
    let after = inspect(&served);
    eprintln!("photo: {source} bytes {before} → {after}");
    assert_eq!(after["width"], 1200, "{after}");
    assert_eq!(after["height"], 1600, "{after}");
    assert_eq!(after["exif_tags"], 0, "{after}");
    assert_eq!(after["gps"], 0, "{after}");
    assert_eq!(after["info"], serde_json::json!([]), "{after}");
    assert_eq!(after["xmp"], false, "{after}");
    assert!(bytes.len() < 300_000, "{} bytes", bytes.len());
    let (status, headers, chart_bytes) = get(&attr(chart, "src").unwrap(), &[]);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    eprintln!("chart: {} bytes as PNG", chart_bytes.len());

    // The feeds and the archive page refer to the same absolute URLs.
    for file in ["feed.xml", "atom.xml", "feed.json", "posts/office.html"] {
        let body = std::fs::read_to_string(root.join("public").join(file)).unwrap();
        assert!(body.contains(&url), "{file} lacks {url}");
    }
}

#[test]
#[ignore = "needs Pillow, python-docx, LibreOffice and the Nu HTML Checker: scripts/test installs them and runs ignored tests"]
fn archive_pages_with_pictures_pass_the_nu_html_checker() {
    let jar = std::env::var("TAYORI_VNU_JAR").expect("TAYORI_VNU_JAR");
    let (dir, _) = pictured_folder(None);
    let o = tayori(dir.path(), &["check"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pages: Vec<PathBuf> = ["posts/office.html", "posts/santei.html", "index.html"]
        .iter()
        .map(|p| dir.path().join("public").join(p))
        .collect();
    let page = std::fs::read_to_string(&pages[0]).unwrap();
    assert!(page.contains("width=\"600\" height=\"800\""), "{page}");
    assert_eq!(support::nu_errors(&jar, &pages), "");
}

#[test]
#[ignore = "needs Pillow, python-docx, LibreOffice and SpamAssassin: scripts/test installs them and runs ignored tests"]
fn an_issue_with_pictures_scores_low_with_spamassassin() {
    let sa = std::env::var("TAYORI_SPAMASSASSIN").expect("TAYORI_SPAMASSASSIN");
    let (dir, _) = pictured_folder(None);
    let root = dir.path();
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let eml = root.join("outbox").join(&support::outbox(root)[0]);
    let verdict = support::spamassassin(&sa, &eml);
    eprintln!("{} {:?}", verdict.score, verdict.rules);
    assert!(verdict.score <= 1.0, "{}", verdict.details);
    // Mail that is mostly pictures is what spammers send; ours is text with a picture.
    for r in &verdict.rules {
        assert!(
            !r.starts_with("HTML_IMAGE_ONLY"),
            "{r} fired: {}",
            verdict.details
        );
    }
}

#[test]
#[ignore = "needs Pillow, python-docx, LibreOffice, Chromium and playwright-core: scripts/test installs them and runs ignored tests"]
fn pictures_fit_the_email_at_375_and_600_pixels_in_chromium() {
    let tools = std::env::var("TAYORI_NODE_TOOLS").expect("TAYORI_NODE_TOOLS");
    let (dir, base) = pictured_folder(None);
    let root = dir.path();
    let out = root.join("preview");
    for post in ["2026-11-30-office.md", "2026-11-30-santei.docx"] {
        let path = root.join("posts").join(post);
        let o = tayori(
            root,
            &[
                "preview",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // The pictures the emails show are served, as they will be to readers.
    let o = tayori(root, &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _server = serve(root, &base);
    let files = [out.join("office.html"), out.join("santei.html")];
    let copy = support::browser_script(&tools, "screenshots.mjs");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/pictures");
    let o = Command::new("node")
        .arg(&copy)
        .arg(&shots)
        .args(&files)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "Chromium found:\n{report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(report.contains("8 screenshots"), "{report}");
}

#[test]
fn a_missing_picture_is_named_by_check_and_status_and_its_post_is_not_sent() {
    let (dir, _) = folder_on_port(None);
    let root = dir.path();
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "![事務所の入口](entrance.jpg)",
    );
    write_post(
        root,
        "2026-11-30-other.md",
        "面会交流のご案内",
        "本文です。",
    );

    let o = tayori(root, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("posts/2026-11-30-office.md: picture `entrance.jpg`: missing"),
        "{err}"
    );
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("picture `entrance.jpg`: missing"),
        "{status}"
    );

    let o = tayori(root, &["send"]);
    let sent: String = support::outbox(root)
        .iter()
        .map(|f| {
            let eml = std::fs::read_to_string(root.join("outbox").join(f)).unwrap();
            support::eml_part(&eml, "text/plain")
        })
        .collect();
    assert!(!sent.is_empty(), "{}", text(&o.stderr));
    assert!(sent.contains("面会交流のご案内"), "the other post goes out");
    assert!(
        !sent.contains("事務所を移転しました"),
        "the post waits for its picture"
    );

    // Once the picture is there, the post is published with it.
    std::fs::write(
        root.join("posts/entrance.jpg"),
        picture(800, 600, 3, image::ImageFormat::Jpeg),
    )
    .unwrap();
    let o = tayori(root, &["check"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("alt text"), "{}", text(&o.stderr));
    // Without alt text: a warning, not an error.
    write_post(
        root,
        "2026-11-30-map.md",
        "地図",
        "<img src=\"entrance.jpg\">",
    );
    let o = tayori(root, &["check"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("2026-11-30-map.md: warning: picture `entrance.jpg` has no alt text"),
        "{}",
        text(&o.stderr)
    );
    let o = tayori(root, &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(root.join("public/posts/office.html")).unwrap();
    let tag = img_tags(&page).remove(0);
    assert_eq!(attr(&tag, "width").as_deref(), Some("600"), "{tag}");
    assert_eq!(attr(&tag, "height").as_deref(), Some("450"), "{tag}");
}

#[cfg(unix)]
#[test]
fn bombs_huge_files_fifos_heic_and_links_out_of_posts_are_problems_of_their_posts() {
    let (dir, _) = folder_on_port(None);
    let root = dir.path();
    let posts = root.join("posts");
    // 30,000 × 30,000 pixels in a few dozen bytes: refused from its header.
    std::fs::write(posts.join("bomb.png"), png_header_only(30_000, 30_000)).unwrap();
    let mut huge = picture(64, 64, 1, image::ImageFormat::Jpeg);
    huge.resize(30 * 1024 * 1024, 0);
    std::fs::write(posts.join("huge.jpg"), huge).unwrap();
    std::fs::write(
        root.join("outside.jpg"),
        picture(64, 64, 2, image::ImageFormat::Jpeg),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("outside.jpg"), posts.join("linked.jpg")).unwrap();
    support::run_ok(Command::new("mkfifo").arg(posts.join("fifo.jpg")));
    std::fs::write(
        posts.join("phone.heic"),
        b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
    )
    .unwrap();
    for (i, file) in [
        "bomb.png",
        "huge.jpg",
        "linked.jpg",
        "fifo.jpg",
        "phone.heic",
        "../outside.jpg",
    ]
    .iter()
    .enumerate()
    {
        write_post(
            root,
            &format!("p{i}.md"),
            &format!("記事{i}"),
            &format!("![図]({file})"),
        );
    }

    let started = std::time::Instant::now();
    let o = tayori(root, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a FIFO never blocks"
    );
    let err = text(&o.stderr);
    for (post, why) in [
        ("p0.md", "30000 × 30000 pixels"),
        ("p1.md", "at most 20 MiB"),
        ("p2.md", "outside posts/"),
        ("p3.md", "FIFO"),
        ("p4.md", "export it as JPEG"),
        ("p5.md", "outside posts/"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("/posts/{post}:")))
            .unwrap_or_else(|| panic!("{post} not named:\n{err}"));
        assert!(line.contains(why), "{post}: {line}");
    }
    assert!(
        !root.join("public/media").exists()
            || std::fs::read_dir(root.join("public/media"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn an_edited_picture_updates_its_post_with_a_new_url_and_the_old_one_stays() {
    let (dir, _) = folder_on_port(None);
    let root = dir.path();
    std::fs::write(
        root.join("posts/seminar.png"),
        picture(1600, 1000, 5, image::ImageFormat::Png),
    )
    .unwrap();
    write_post(
        root,
        "2026-11-30-seminar.md",
        "セミナーのご案内",
        "![セミナーのちらし](seminar.png)",
    );
    let daemon = support::Daemon::start(root, &[]);
    daemon.wait_log("published", 1);
    let page = || std::fs::read_to_string(root.join("public/posts/seminar.html")).unwrap();
    let first = attr(&img_tags(&page())[0], "src").unwrap();

    // Same name, new content: the post is updated, its page and feeds show the new picture.
    let tmp = root.join("posts/.seminar.tmp");
    std::fs::write(&tmp, picture(1600, 1000, 9, image::ImageFormat::Png)).unwrap();
    std::fs::rename(&tmp, root.join("posts/seminar.png")).unwrap();
    daemon.wait_log("updated", 1);
    let src = || attr(&img_tags(&page())[0], "src").unwrap();
    support::wait_for(
        "the page with the new picture",
        Duration::from_secs(20),
        || src() != first,
    );
    let second = src();
    let feed = || std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    support::wait_for(
        "the feed with the new picture",
        Duration::from_secs(20),
        || feed().contains(&second),
    );
    assert!(!feed().contains(&first));
    // Emails already sent still show the old one.
    let name = |url: &str| url.rsplit('/').next().unwrap().to_string();
    assert!(root.join("public/media").join(name(&first)).is_file());
    assert!(root.join("public/media").join(name(&second)).is_file());
    // A picture is never a post of its own.
    assert!(!daemon.log_has("seminar.png: not"));
}

#[test]
fn a_post_waits_while_its_picture_is_being_copied_in_and_is_published_once_it_is_there() {
    use std::io::Write;
    let (dir, _) = folder_on_port(None);
    let root = dir.path();
    let daemon = support::Daemon::start(root, &[]);
    let photo = picture(1600, 1200, 6, image::ImageFormat::Jpeg);
    let mut copying = std::fs::File::create(root.join("posts/entrance.jpg")).unwrap();
    copying.write_all(&photo[..photo.len() / 2]).unwrap();
    copying.flush().unwrap();
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "![事務所の入口](entrance.jpg)",
    );
    // A later post being published shows the daemon has read the folder since.
    write_post(
        root,
        "2026-11-30-other.md",
        "面会交流のご案内",
        "本文です。",
    );
    daemon.wait_log("slug=other", 1);
    assert!(
        !daemon.log_has("rejected file"),
        "a picture being written is not broken"
    );
    assert!(!daemon.log_has("slug=office"));

    copying.write_all(&photo[photo.len() / 2..]).unwrap();
    drop(copying);
    daemon.wait_log("slug=office", 1);
    assert!(!daemon.log_has("rejected file"));
    let page = root.join("public/posts/office.html");
    support::wait_for("the page", Duration::from_secs(20), || page.exists());
    let page = std::fs::read_to_string(page).unwrap();
    assert!(page.contains("width=\"600\" height=\"450\""), "{page}");
}

#[test]
#[ignore = "needs aiosmtpd: scripts/test installs it and runs ignored tests"]
fn the_office_receipt_names_a_missing_picture_and_no_reader_gets_its_post() {
    let smtp = SmtpServer::start(&support::python(), &[]);
    let (dir, _) = folder_on_port(Some(&support::smtp_block(smtp.port, 2)));
    let root = dir.path();
    let cfg = root.join("tayori.yaml");
    let yaml = std::fs::read_to_string(&cfg).unwrap()
        + "editor:\n  to: [office@example.jp]\n  review: 0\n";
    std::fs::write(&cfg, yaml).unwrap();
    let _daemon = support::Daemon::start(root, &[]);
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "![事務所の入口](entrance.jpg)",
    );
    support::wait_for("a receipt", Duration::from_secs(60), || {
        smtp.received()
            .iter()
            .any(|m| m["headers"]["X-Tayori-Kind"] == "receipt")
    });
    let receipt = smtp
        .received()
        .into_iter()
        .find(|m| m["headers"]["X-Tayori-Kind"] == "receipt")
        .unwrap();
    let body = receipt["text"].as_str().unwrap();
    assert!(body.contains("2026-11-30-office.md"), "{body}");
    assert!(body.contains("entrance.jpg"), "{body}");
    assert!(smtp
        .received()
        .iter()
        .all(|m| m["rcpt"] == serde_json::json!(["office@example.jp"])));
}

#[test]
#[ignore = "needs Debian's wordpress, mariadb-server, php-cli, php-mysql and root: scripts/test installs them and runs ignored tests"]
fn pictures_are_uploaded_to_the_wordpress_media_library_once_and_shown_from_there() {
    let wp = support::wordpress::WordPress::start();
    let (dir, base) = folder_on_port(None);
    let root = dir.path();
    let cfg = root.join("tayori.yaml");
    let yaml = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "wordpress:\n  url: {}\n  user: office\n  status: publish\n",
            wp.url()
        );
    std::fs::write(&cfg, yaml).unwrap();
    std::fs::write(
        root.join("posts/entrance.jpg"),
        picture(1600, 1200, 4, image::ImageFormat::Jpeg),
    )
    .unwrap();
    let env = [
        ("TAYORI_WORDPRESS_PASSWORD", wp.password.as_str()),
        ("TAYORI_WEBHOOK_FIRST_RETRY_MS", "200"),
    ];
    let daemon = support::Daemon::start(root, &env);
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "![事務所の入口](entrance.jpg)\n\n初版。",
    );
    let content = |wp: &support::wordpress::WordPress| {
        wp.get("posts?slug=office&context=edit")
            .as_array()
            .and_then(|a| a.first().cloned())
            .and_then(|p| p["content"]["raw"].as_str().map(str::to_string))
    };
    support::wait_for("the post in WordPress", Duration::from_secs(30), || {
        content(&wp).is_some()
    });
    let html = content(&wp).unwrap();
    let src = attr(&img_tags(&html)[0], "src").unwrap();
    assert!(
        !src.starts_with(&base),
        "{src}: the blog shows its own copy"
    );
    assert!(src.starts_with(&wp.url()), "{src}");
    assert_eq!(
        attr(&img_tags(&html)[0], "alt").as_deref(),
        Some("事務所の入口")
    );
    let media = wp.get("media?context=edit");
    assert_eq!(media.as_array().unwrap().len(), 1, "{media}");
    assert_eq!(media[0]["mime_type"], "image/jpeg");

    // An edit of the text keeps the picture: no second upload.
    write_post(
        root,
        "2026-11-30-office.md",
        "事務所を移転しました",
        "![事務所の入口](entrance.jpg)\n\n第二版。",
    );
    support::wait_for("the edit in WordPress", Duration::from_secs(30), || {
        content(&wp).is_some_and(|c| c.contains("第二版"))
    });
    assert_eq!(wp.get("media?context=edit").as_array().unwrap().len(), 1);
    drop(daemon);
}

/// A PNG of `width` × `height` whose pixel data is a few bytes: a decompression bomb.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32fast::hash(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xff, 0, 0, 1, 0, 1],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}
