//! The HTTP server over real loopback HTTP: one-click unsubscribe (RFC 8058), the confirm page,
//! forged tokens, conditional feed requests, health; and the next issue honouring the
//! unsubscribe.

mod support;

use std::sync::Arc;

use base64::Engine as _;
use support::*;
use tayori::server::{serve, AppState};
use tayori::store::Store;
use tayori::unsubscribe::Key;
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(root: &std::path::Path, key: Key) -> Running {
    let config = tayori::config::load(root).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let state = AppState::new(root, Arc::new(config), key);
    let task = tokio::spawn(serve(listener, state, stop.clone()));
    Running { base, stop, task }
}

impl Running {
    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn suppressed(root: &std::path::Path) -> Vec<String> {
    Store::open(root)
        .unwrap()
        .suppressions()
        .unwrap()
        .into_iter()
        .map(|s| s.0)
        .collect()
}

/// The key `tayori send` signs with here, and the server checks with.
const SECRET: &str = "0123456789abcdef0123456789abcdef-server-tests";

/// Sends the sample post as issue 1 (to `outbox/`) and returns each reader's unsubscribe
/// token, as the `List-Unsubscribe` header carries it.
fn first_issue_tokens(root: &std::path::Path) -> Vec<(String, String)> {
    add_post(root);
    let o = tayori_env(root, &["send"], &[("TAYORI_SECRET", SECRET)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    outbox(root)
        .iter()
        .filter(|f| f.starts_with("00001-"))
        .map(|f| {
            let eml = std::fs::read_to_string(root.join("outbox").join(f)).unwrap();
            let header = eml
                .lines()
                .find(|l| l.starts_with("List-Unsubscribe:"))
                .unwrap_or_else(|| panic!("no List-Unsubscribe in {f}"));
            let token = header
                .split("/unsubscribe/")
                .nth(1)
                .and_then(|t| t.split('>').next())
                .unwrap()
                .to_string();
            let address = f.trim_start_matches("00001-").trim_end_matches(".eml");
            (address.to_string(), token)
        })
        .collect()
}

fn token_of<'a>(tokens: &'a [(String, String)], address: &str) -> &'a str {
    &tokens.iter().find(|(a, _)| a == address).unwrap().1
}

#[tokio::test]
async fn one_click_post_suppresses_at_once_and_get_only_asks() {
    let dir = newsletter_with_smtp(None, 1);
    let tokens = first_issue_tokens(dir.path());
    let token = token_of(&tokens, "keiko.suzuki@example.jp");
    let srv = start(dir.path(), Key::new(SECRET)).await;
    let http = support::http();

    for head_or_get in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let page = http
            .request(head_or_get, format!("{}/unsubscribe/{token}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
    }
    let page = http
        .get(format!("{}/unsubscribe/{token}", srv.base))
        .send()
        .await
        .unwrap();
    let body = page.text().await.unwrap();
    assert!(
        body.contains("<form method=\"post\"") && body.contains("配信を停止する"),
        "{body}"
    );
    assert!(
        suppressed(dir.path()).is_empty(),
        "neither HEAD nor GET unsubscribes"
    );

    let post = http
        .post(format!("{}/unsubscribe/{token}", srv.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert!(post.headers().get("set-cookie").is_none());
    assert_eq!(suppressed(dir.path()), ["keiko.suzuki@example.jp"]);
    srv.shutdown().await;

    // The next issue leaves the address out, in both of its case variants.
    std::fs::copy(
        fixtures().join("posts/2026-11-02-youikuhi-points.txt"),
        dir.path().join("posts/2026-11-02-youikuhi-points.txt"),
    )
    .unwrap();
    let o = tayori_env(dir.path(), &["send"], &[("TAYORI_SECRET", SECRET)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("4 sent"), "{}", text(&o.stdout));
    let second: Vec<String> = outbox(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("00002-"))
        .collect();
    assert!(!second.iter().any(|f| f.contains("keiko")), "{second:?}");
}

#[tokio::test]
async fn unsubscribe_links_hold_nothing_of_the_address_and_old_links_still_work() {
    let dir = newsletter_with_smtp(None, 1);
    let tokens = first_issue_tokens(dir.path());
    assert_eq!(tokens.len(), 5, "{tokens:?}");
    for (address, token) in &tokens {
        let (local, domain) = address.split_once('@').unwrap();
        let encodings = [
            address.clone(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(address),
            base64::engine::general_purpose::STANDARD.encode(address),
            address.bytes().map(|b| format!("{b:02x}")).collect(),
        ];
        for part in [local, domain]
            .into_iter()
            .chain(encodings.iter().map(|e| &e[..6]))
        {
            assert!(
                !token.to_lowercase().contains(&part.to_lowercase()),
                "{token} holds {part} of {address}"
            );
        }
    }
    let key = Key::new(SECRET);
    let srv = start(dir.path(), key.clone()).await;
    let http = support::http();
    // A link in the old format (the address with its MAC), as mail already in inboxes has it.
    let old = key.address_token("Hanako.Sato@example.jp");
    let url = format!("{}/unsubscribe/{old}", srv.base);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert!(suppressed(dir.path()).is_empty());
    let post = http
        .post(&url)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(suppressed(dir.path()), ["hanako.sato@example.jp"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn forged_guessed_or_foreign_tokens_get_404_and_unsubscribe_nobody() {
    let dir = newsletter_with_smtp(None, 1);
    let tokens = first_issue_tokens(dir.path());
    let key = Key::new(SECRET);
    let genuine = key.address_token("hanako.sato@example.jp");
    let (_, mac) = genuine.split_once('.').unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged_old = format!("{}.{mac}", b64.encode("yumi.tanaka@example.com")); // yumi's address, hanako's MAC
    let foreign = Key::new(b"another-key-another-key-another-key".to_vec());
    let guesses = [
        forged_old,
        foreign.address_token("hanako.sato@example.jp"),
        foreign.token("hanako.sato@example.jp"),
        key.token("not-a-reader@example.jp"),
        b64.encode([0u8; 16]),
        b64.encode(b"hanako.sato@exam"),
        {
            // One character off a genuine token.
            let t = token_of(&tokens, "hanako.sato@example.jp");
            let last = if t.ends_with('A') { "B" } else { "A" };
            format!("{}{last}", &t[..t.len() - 1])
        },
        "nonsense".to_string(),
        "a.b".to_string(),
    ];
    let srv = start(dir.path(), key).await;
    let http = support::http();
    for token in &guesses {
        let url = format!("{}/unsubscribe/{token}", srv.base);
        assert_eq!(
            http.get(&url).send().await.unwrap().status(),
            404,
            "{token}"
        );
        let post = http
            .post(&url)
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 404, "{token}");
    }
    assert!(suppressed(dir.path()).is_empty());
    srv.shutdown().await;
}

#[tokio::test]
async fn feeds_answer_conditional_requests_with_304() {
    let dir = newsletter_with_smtp(None, 1);
    add_post(dir.path());
    assert!(tayori(dir.path(), &["build"]).status.success());
    let srv = start(dir.path(), Key::new(b"k".to_vec())).await;
    let http = support::http();
    assert_eq!(
        http.get(format!("{}/healthz", srv.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for (path, ct) in [
        ("/feed.xml", "application/rss+xml; charset=utf-8"),
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
    ] {
        let first = http
            .get(format!("{}{path}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()["content-type"], ct);
        let etag = first.headers()["etag"].to_str().unwrap().to_string();
        let modified = first.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_string();
        let body = first.bytes().await.unwrap();
        assert!(feed_rs::parser::parse(&body[..]).is_ok());
        let again = http
            .get(format!("{}{path}", srv.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        let since = http
            .get(format!("{}{path}", srv.base))
            .header("if-modified-since", &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(since.status(), 304);
        let stale = http
            .get(format!("{}{path}", srv.base))
            .header("if-none-match", "\"old\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }
    let page = http
        .get(format!("{}/posts/menkai-koryu.html", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("面会交流のルールを決めるときに考えておきたいこと"));
    assert_eq!(
        http.get(format!("{}/posts/..%2Fstate%2Fsecret.html", srv.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The year page of the archive, and nothing else under /archive/.
    let year = http
        .get(format!("{}/archive/2026.html", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(year.status(), 200);
    assert!(year.text().await.unwrap().contains("2026年の記事"));
    let atom = http
        .get(format!("{}/archive/2026.xml", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(atom.status(), 200, "the year's Atom archive (RFC 5005)");
    assert_eq!(
        atom.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    for bad in [
        "/archive/..%2Findex.html",
        "/archive/2026.txt",
        "/archive/20261.html",
        "/archive/20261.xml",
    ] {
        let r = http.get(format!("{}{bad}", srv.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn preview_shows_the_next_issue_without_sending_it() {
    let dir = newsletter_with_smtp(None, 1);
    add_post(dir.path());
    let srv = start(dir.path(), Key::new(b"k".to_vec())).await;
    let page = support::http()
        .get(format!("{}/preview", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("件名: <strong>面会交流のルールを決めるときに考えておきたいこと</strong>"),
        "{body}"
    );
    assert!(body.contains("見本 太郎"), "addressed to a made-up reader");
    for subscriber in ["佐藤", "hanako.sato", "example.com", "example.net"] {
        assert!(
            !body.contains(subscriber),
            "no subscriber shown: {subscriber}"
        );
    }
    assert!(
        body.contains("/unsubscribe/preview"),
        "an unsubscribe link that does nothing"
    );
    assert!(body.contains("【編集後記】"), "the text part is shown too");
    srv.shutdown().await;
    let store = Store::open(dir.path()).unwrap();
    assert!(
        store.issue_counts().unwrap().is_empty(),
        "a preview makes no issue"
    );
    assert_eq!(
        store.pending_posts().unwrap().len(),
        0,
        "nor publishes anything"
    );
}

#[tokio::test]
async fn preview_is_refused_to_clients_off_the_loopback_interface() {
    use tower_service::Service;
    let dir = newsletter_with_smtp(None, 1);
    add_post(dir.path());
    let state = AppState::new(
        dir.path(),
        Arc::new(tayori::config::load(dir.path()).unwrap()),
        Key::new(b"k".to_vec()),
    );
    let mut app = tayori::server::router(state);
    let ask = |peer: &str| {
        let mut req = axum::http::Request::get("/preview")
            .body(axum::body::Body::empty())
            .unwrap();
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        req
    };
    let remote = app.call(ask("203.0.113.7:50000")).await.unwrap();
    assert_eq!(remote.status(), 404);
    let local = app.call(ask("127.0.0.1:50000")).await.unwrap();
    assert_eq!(local.status(), 200);
    let mapped = app.call(ask("[::ffff:127.0.0.1]:50000")).await.unwrap();
    assert_eq!(mapped.status(), 200, "IPv4-mapped loopback is loopback");
}

#[tokio::test]
async fn preview_is_refused_to_requests_a_reverse_proxy_forwarded() {
    let dir = newsletter_with_smtp(None, 1);
    add_post(dir.path());
    let srv = start(dir.path(), Key::new(b"k".to_vec())).await;
    let http = support::http();
    let url = format!("{}/preview", srv.base);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Real-IP", "203.0.113.7"),
    ] {
        let r = http.get(&url).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 404, "{name}: {value}");
    }
    srv.shutdown().await;
}

/// `tayori serve` on a free port of 127.0.0.1, once `/healthz` answers.
fn serve_binary(root: &std::path::Path) -> (Spawned, std::net::SocketAddr) {
    let port = free_port();
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"));
    std::fs::write(&cfg, text).unwrap();
    let server = Spawned::tayori(root, &["serve"], &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for("the server", std::time::Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    (server, addr)
}

/// `GET /healthz` from the loopback address `from` (another client than 127.0.0.1); the
/// status line.
fn healthz_from(from: &str, to: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut tcp = socket.connect(to).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: news\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or("").to_string()
    })
}

#[test]
fn trickling_uploads_from_one_client_are_cut_and_never_starve_another() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    const TRICKLERS: usize = 300;
    let dir = newsletter_with_smtp(None, 1);
    let (_server, addr) = serve_binary(dir.path());

    // 300 connections from 127.0.0.1, each announcing a 100 KB form and sending one byte.
    let started = Instant::now();
    let mut tricklers: Vec<Option<std::net::TcpStream>> = (0..TRICKLERS)
        .map(|_| {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            let head = "POST /subscribe HTTP/1.1\r\nHost: news\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 102400\r\n\r\ne";
            let _ = tcp.write_all(head.as_bytes());
            tcp.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            Some(tcp)
        })
        .collect();

    // Another client is answered at once.
    let asked = Instant::now();
    assert_eq!(healthz_from("127.0.0.2", addr), "HTTP/1.1 200 OK");
    let healthz = asked.elapsed();
    assert!(
        healthz < Duration::from_secs(2),
        "/healthz took {healthz:?}"
    );

    // Trickle a byte every 200 ms to those still open, until every one is closed (bounded).
    let mut most_open_after_a_second = 0;
    let mut buf = [0u8; 1024];
    for _round in 0..100 {
        for slot in tricklers.iter_mut() {
            let Some(tcp) = slot else { continue };
            let closed = match tcp.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false, // the 408 answer; the close follows
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            };
            if closed || tcp.write_all(b"e").is_err() {
                *slot = None;
            }
        }
        let open = tricklers.iter().flatten().count();
        if started.elapsed() > Duration::from_secs(1) {
            most_open_after_a_second = most_open_after_a_second.max(open);
        }
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    eprintln!(
        "/healthz from another client: {healthz:?}; at most {most_open_after_a_second} of \
         {TRICKLERS} trickling connections open after 1 s; all closed after {took:?}"
    );
    assert_eq!(tricklers.iter().flatten().count(), 0, "all closed");
    assert!(
        most_open_after_a_second <= tayori::server::PER_CLIENT_CONNECTIONS,
        "{most_open_after_a_second} open"
    );
    let deadline = tayori::server::HEADER_TIMEOUT + tayori::server::BODY_TIMEOUT;
    assert!(
        took < deadline + Duration::from_secs(3),
        "closed after {took:?}"
    );
}
