//! A real WordPress (Debian's package) for the cross-post tests, started in a few seconds
//! without Apache: a private MariaDB on a unix socket (`mariadb-install-db` into a temporary
//! folder, `mariadbd --skip-networking`), a host config in `/etc/wordpress/` (Debian's
//! WordPress reads `config-<name>.php`), `wp_install()` and an application password from PHP
//! CLI, and `php -S` with a router. Each server runs in its own process group, stopped as a
//! group on drop (the PHP server's workers outlive their parent).

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WordPress {
    pub port: u16,
    /// The application password of the user `office`.
    pub password: String,
    config_file: PathBuf,
    servers: Vec<Child>,
    _dir: tempfile::TempDir,
}

fn support() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/wordpress")
}

fn wait(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl WordPress {
    pub fn start() -> WordPress {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("db");
        let socket = dir.path().join("mysql.sock");
        super::run_ok(
            Command::new("mariadb-install-db")
                .args([
                    "--no-defaults",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ])
                .arg(format!("--datadir={}", data.display())),
        );
        let mut servers = Vec::new();
        servers.push(
            Command::new("mariadbd")
                .args([
                    "--no-defaults",
                    "--user=root",
                    "--skip-networking",
                    "--skip-grant-tables",
                ])
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mariadb.pid").display()
                ))
                .arg(format!(
                    "--log-error={}",
                    dir.path().join("mariadb.log").display()
                ))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mariadbd starts"),
        );
        let mut wp = WordPress {
            port: super::free_port(),
            password: String::new(),
            config_file: PathBuf::new(),
            servers,
            _dir: dir,
        };
        wait("MariaDB", || socket.exists());
        wait("MariaDB", || {
            Command::new("mariadb")
                .args([
                    "--no-defaults",
                    "-u",
                    "root",
                    "-e",
                    "CREATE DATABASE IF NOT EXISTS wp",
                ])
                .arg(format!("--socket={}", socket.display()))
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let name = format!("tayori-test-{}-{}", std::process::id(), wp.port);
        wp.config_file = PathBuf::from(format!("/etc/wordpress/config-{name}.php"));
        let port = wp.port;
        std::fs::write(
            &wp.config_file,
            format!(
                "<?php\n\
                 define('DB_NAME', 'wp');\n\
                 define('DB_USER', 'root');\n\
                 define('DB_PASSWORD', '');\n\
                 define('DB_HOST', 'localhost:{}');\n\
                 // Application passwords over plain http need a local environment.\n\
                 define('WP_ENVIRONMENT_TYPE', 'local');\n\
                 define('DISABLE_WP_CRON', true);\n\
                 define('WP_HOME', 'http://127.0.0.1:{port}');\n\
                 define('WP_SITEURL', 'http://127.0.0.1:{port}');\n",
                socket.display()
            ),
        )
        .expect("/etc/wordpress is writable (the test suite runs as root)");
        wp.password = super::run_ok(
            Command::new("php")
                .arg(support().join("install.php"))
                .env("WP_CONFIG_NAME", &name),
        )
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
        assert_eq!(wp.password.len(), 24, "an application password");
        wp.servers.push(
            Command::new("php")
                .args([
                    "-S",
                    &format!("127.0.0.1:{port}"),
                    "-t",
                    "/usr/share/wordpress",
                ])
                .arg(support().join("router.php"))
                .env("WP_CONFIG_NAME", &name)
                // WordPress calls itself (REST, loopback checks): one worker would deadlock.
                .env("PHP_CLI_SERVER_WORKERS", "4")
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("php -S starts"),
        );
        wait("php -S", || TcpStream::connect(("127.0.0.1", port)).is_ok());
        wp
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// POST JSON to the REST API as `office` (as the attorney writing on the blog would).
    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    /// GET on the REST API as `office` (`context=edit` shows drafts and trash), the JSON answer.
    pub fn get(&self, path: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, path, None)
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("http://127.0.0.1:{}/wp-json/wp/v2/{path}", self.port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = crate::support::http()
                .request(method, &url)
                .basic_auth("office", Some(&self.password));
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let text = r.text().await.unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
        })
    }
}

impl Drop for WordPress {
    fn drop(&mut self) {
        for child in &mut self.servers {
            // The group: php -S forks its workers, which outlive the parent.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.config_file);
    }
}
