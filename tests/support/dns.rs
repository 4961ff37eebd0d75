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
        // Ready means dnsmasq itself answered: a TCP connect alone may reach whoever took the
        // port, while this dnsmasq is about to exit on 'Address already in use'.
        wait_for("dnsmasq answering", Duration::from_secs(10), || {
            exited = matches!(child.0.try_wait(), Ok(Some(_)));
            exited || answers_dns(port)
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

/// Whether a DNS server on the loopback `port` answers a query (RFC 1035 §4.1: the root's A
/// record; any reply carrying the query's id will do, REFUSED included).
fn answers_dns(port: u16) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let query = [0x7a, 0x79, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut reply = [0u8; 512];
    matches!(socket.recv_from(&mut reply), Ok((n, _)) if n >= 2 && reply[..2] == query[..2])
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
