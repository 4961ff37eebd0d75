//! What keeps slow or greedy clients from starving the server: a per-client cap on open
//! connections, and a deadline on a request's body (hyper's header timeout covers the head).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};

/// Connections one client may hold open at once.
pub const PER_CLIENT_CONNECTIONS: usize = 8;
/// A request's body must have arrived this long after its head.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(4);
/// The largest request body read (forms and RFC 8058's one-click POST are far smaller).
pub const MAX_BODY: usize = 64 * 1024;

/// Who a client is for the limits: an IPv4 address, or the /64 of an IPv6 one (one
/// subscriber line gets a whole /64, so a single address means nothing). IPv4-mapped IPv6
/// addresses are IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(net))
        }
        v4 => v4,
    }
}

/// The open connections of each client.
#[derive(Clone, Default)]
pub(super) struct ClientSlots(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection; gives its slot back when dropped.
pub(super) struct ClientSlot {
    slots: ClientSlots,
    client: IpAddr,
}

impl ClientSlots {
    /// A slot for one more connection of `client`, unless it holds the most already.
    pub(super) fn take(&self, client: IpAddr) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client).or_default();
        if *n >= PER_CLIENT_CONNECTIONS {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The whole body of a request, read within [`BODY_TIMEOUT`]; else the answer to send instead
/// (408 or 413, closing the connection).
pub(super) async fn read_body(
    req: Request<hyper::body::Incoming>,
) -> Result<Request<Body>, Response<Body>> {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(Body::new(body), MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(_)) => Err(closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large\n",
        )),
        Err(_) => Err(closing(StatusCode::REQUEST_TIMEOUT, "request too slow\n")),
    }
}

fn closing(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64_and_an_ipv4_client_its_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_connections_until_one_closes() {
        let slots = ClientSlots::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..PER_CLIENT_CONNECTIONS)
            .map(|_| slots.take(ip).expect("within the cap"))
            .collect();
        assert!(slots.take(ip).is_none());
        assert!(slots.take("127.0.0.2".parse().unwrap()).is_some());
        drop(held);
        assert!(slots.take(ip).is_some());
    }
}
