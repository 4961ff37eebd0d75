//! A real Postfix (Debian's package) with its own configuration, for a bounce written by
//! Postfix itself: it takes mail on a loopback port, delivers `bounces.test` into a Maildir
//! (the one Dovecot serves) and answers "unknown user" for any local user of
//! `mx.tayori.test` — in a DSN sent back to the envelope sender. Runs `postfix start-fg` in its
//! own process group with the log on its standard output; stopped as a group on drop.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postfix {
    pub port: u16,
    conf: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Postfix {
    /// Delivers `bounce@bounces.test` (and `bounce+anything@`) into `maildir`, owned by nobody.
    pub fn start(maildir: &Path) -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("postfix")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let conf = d.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        for sub in ["queue", "data"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = super::free_port();
        // Debian's master.cf, without chroot (our queue is elsewhere) and with smtpd on our port.
        let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        let master: Vec<String> = master
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if l.starts_with(|c: char| c.is_ascii_alphanumeric()) && f.len() >= 8 {
                    let mut f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
                    f[4] = "n".into();
                    if f[0] == "smtp" && f[1] == "inet" {
                        f[0] = format!("127.0.0.1:{port}");
                    }
                    f.join(" ")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(conf.join("master.cf"), master.join("\n") + "\n").unwrap();
        let base = maildir.parent().unwrap();
        let folder = maildir.file_name().unwrap().to_string_lossy();
        std::fs::write(
            conf.join("vmailbox"),
            format!("bounce@bounces.test {folder}/\n"),
        )
        .unwrap();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {d}/queue\ndata_directory = {d}/data\n\
                 meta_directory = /etc/postfix\nmail_owner = postfix\nsetgid_group = postdrop\n\
                 maillog_file = /dev/stdout\n\
                 myhostname = mx.tayori.test\nmydomain = tayori.test\nmyorigin = $myhostname\n\
                 mydestination = localhost, $myhostname\nlocal_recipient_maps =\n\
                 alias_maps =\nalias_database =\n\
                 inet_interfaces = loopback-only\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 smtputf8_enable = no\nrecipient_delimiter = +\n\
                 virtual_mailbox_domains = bounces.test\nvirtual_mailbox_base = {base}\n\
                 virtual_mailbox_maps = texthash:{conf}/vmailbox\n\
                 virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n",
                d = d.display(),
                base = base.display(),
                conf = conf.display(),
            ),
        )
        .unwrap();
        super::run_ok(
            Command::new("/usr/lib/postfix/sbin/post-install")
                .arg(format!("config_directory={}", conf.display()))
                .arg("meta_directory=/etc/postfix")
                .arg("create-missing"),
        );
        super::run_ok(Command::new("chown").arg("postfix").arg(d.join("data")));
        let child = Command::new("postfix")
            .arg("-c")
            .arg(&conf)
            .arg("start-fg")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postfix starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "postfix listens");
            std::thread::sleep(Duration::from_millis(50));
        }
        Postfix {
            port,
            conf,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
