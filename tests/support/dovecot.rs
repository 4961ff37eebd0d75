//! A real Dovecot (Debian's dovecot-imapd and dovecot-pop3d) serving one Maildir over IMAPS and
//! POP3S on loopback ports, with its own configuration, a test CA's certificate and one user
//! (`bounce`). Runs in the foreground in its own process group, stopped as a group on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "bounce";
pub const PASSWORD: &str = "b0unce-pass";

pub struct Dovecot {
    pub imaps: u16,
    pub pop3s: u16,
    /// The CA that signed the server's certificate (for `SSL_CERT_FILE`).
    pub ca: String,
    pub maildir: PathBuf,
    /// Dovecot's log: logins and logouts.
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("dovecot")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // Dovecot's unprivileged processes must reach the files.
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (ca, cert, key) = super::certificates(d);
        let maildir = d.join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::create_dir_all(d.join("home")).unwrap();
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let (imaps, pop3s) = (super::free_port(), super::free_port());
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap pop3\nlisten = 127.0.0.1\nssl = required\n\
             ssl_cert = <{cert}\nssl_key = <{key}\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\n\
             mail_location = maildir:{m}\nauth_mechanisms = plain\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {imaps}\n    ssl = yes\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = 0\n  }}\n  inet_listener pop3s {{\n    port = {pop3s}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\nservice stats {{\n  chroot =\n}}\n",
            d = d.display(),
            m = maildir.display(),
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        chown_to_nobody(&maildir);
        chown_to_nobody(&d.join("home"));
        let child = Command::new("dovecot")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .arg("-F")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", imaps)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", pop3s)).is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(20), "dovecot listens");
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot {
            imaps,
            pop3s,
            ca,
            maildir,
            log: d.join("dovecot.log"),
            child,
            _dir: dir,
        }
    }

    /// Puts a message into the mailbox, as delivery would.
    pub fn deliver(&self, name: &str, message: &str) {
        // Maildir delivery: written and owned in tmp/, then renamed into new/ — once it is in
        // new/, Dovecot or tayori may move it to cur/ at once.
        let tmp = self.maildir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        chown_to_nobody(&tmp);
        let path = tmp.join(name);
        std::fs::write(&path, message).unwrap();
        chown_to_nobody(&path);
        std::fs::rename(&path, self.maildir.join("new").join(name)).unwrap();
    }

    /// The names of the messages in `new/` and `cur/` (with their flags).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub)).unwrap().flatten() {
                out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }
}

fn chown_to_nobody(path: &Path) {
    let o = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success());
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
