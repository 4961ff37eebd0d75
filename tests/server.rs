//! The HTTP server over real loopback HTTP: one-click unsubscribe (RFC 8058), the confirm page,
//! forged tokens, conditional feed requests, health; and the next issue honouring the
//! unsubscribe.

mod support;

use std::sync::Arc;

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

#[tokio::test]
async fn one_click_post_suppresses_at_once_and_get_only_asks() {
    let dir = newsletter_with_smtp(None, 1);
    let key = Key::new(b"test-key".to_vec());
    let token = key.token("Keiko.Suzuki@Example.JP");
    let srv = start(dir.path(), key).await;
    let http = reqwest::Client::new();

    let page = http
        .get(format!("{}/unsubscribe/{token}", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("<form method=\"post\"") && body.contains("配信を停止する"),
        "{body}"
    );
    assert!(
        suppressed(dir.path()).is_empty(),
        "a GET never unsubscribes"
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
    add_post(dir.path());
    let o = tayori(dir.path(), &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("4 sent"), "{}", text(&o.stdout));
    let outbox: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!outbox.iter().any(|f| f.contains("keiko")), "{outbox:?}");
}

#[tokio::test]
async fn forged_or_foreign_tokens_get_404_and_change_nothing() {
    let dir = newsletter_with_smtp(None, 1);
    let key = Key::new(b"test-key".to_vec());
    let genuine = key.token("hanako.sato@example.jp");
    let (_, mac) = genuine.split_once('.').unwrap();
    let forged = format!("{}.{mac}", "eXVtaS50YW5ha2FAZXhhbXBsZS5jb20"); // yumi's address, hanako's MAC
    let foreign = Key::new(b"another-key".to_vec()).token("hanako.sato@example.jp");
    let srv = start(dir.path(), key).await;
    let http = reqwest::Client::new();
    for token in [forged.as_str(), foreign.as_str(), "nonsense", "a.b"] {
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
    let http = reqwest::Client::new();
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
    let page = reqwest::get(format!("{}/preview", srv.base)).await.unwrap();
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
