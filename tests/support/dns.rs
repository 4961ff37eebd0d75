//! A real DNS server for the tests: dnsmasq on a loopback port, answering only the records it
//! is given (DKIM keys, SPF, DMARC, MX).

use std::process::Command;
use std::time::Duration;

use super::{wait_for, Spawned};

/// dnsmasq answering only the given records (`--txt-record=…`, `--mx-host=…`), on a free
/// loopback port; killed on drop.
///
/// The port is found by binding UDP and letting go, so another process (a parallel test's
/// outgoing TCP connection, another server) may take it, for UDP or TCP, before dnsmasq binds
/// both: dnsmasq then exits at once, and we start it again on another port.
pub fn dnsmasq(records: &[String]) -> (Spawned, u16) {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let mut child = Spawned(
            Command::new(std::env::var("TAYORI_DNSMASQ").unwrap_or_else(|_| "dnsmasq".into()))
                .args([
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--user=root",
                    &format!("--port={port}"),
                ])
                .args(records)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("dnsmasq starts"),
        );
        let mut exited = false;
        wait_for("dnsmasq listening", Duration::from_secs(10), || {
            exited = matches!(child.0.try_wait(), Ok(Some(_)));
            exited || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !exited {
            return (child, port);
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        last_error = stderr;
    }
    panic!("dnsmasq would not start on five ports: {last_error}");
}

/// A TXT record whose text may be longer than one DNS string (255 octets): split.
pub fn txt(name: &str, text: &str) -> String {
    let parts: Vec<String> = text
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    format!("--txt-record={name},{}", parts.join(","))
}
