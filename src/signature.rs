//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the HMAC-SHA256 of
//! `id.timestamp.body` with the webhook's key, as `v1,<base64>`. A leaf: the cross-post queue
//! signs its events with it, and the office signs the alerts it POSTs to `editor.alert_webhook`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn webhook(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}
