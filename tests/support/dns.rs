//! A real DNS server for the tests: dnsmasq on a loopback port, answering only the records it
//! is given (DKIM keys, SPF, DMARC, MX).

use std::process::Command;
use std::time::Duration;

use super::{wait_for, Spawned};

/// dnsmasq answering only the given records (`--txt-record=…`, `--mx-host=…`), on a free
/// loopback port; killed on drop.
pub fn dnsmasq(records: &[String]) -> (Spawned, u16) {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let child = Spawned(
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
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq starts"),
    );
    wait_for("dnsmasq listening", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port)
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
