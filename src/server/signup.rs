//! The public sign-up, double opt-in (with `subscribe:` in the configuration):
//!
//! - `GET /subscribe`: the form — address, optional name, the consent text right beside the
//!   address, a honeypot field `website` people never see, and a signed stamp of when it was
//!   shown;
//! - `POST /subscribe`: always the same page ("確認メールをお送りしました"), whatever the address,
//!   so nobody can learn who is subscribed. Only a request that passes every check gets one
//!   confirmation email: it is queued in the store and sent at once in the background (the
//!   answer takes as long either way), and retried with backoff while the relay is down, across
//!   restarts, until it is sent or refused for good ([`confirmations`]). A POST whose `Origin`
//!   is neither `server.public_url`'s nor `site.url`'s gets 403 and no email: another site
//!   cannot make its visitors' browsers sign up third parties;
//! - `GET /subscribe/confirm/<token>`: a page with a button; it confirms nothing, since mail
//!   scanners follow links;
//! - `POST /subscribe/confirm/<token>`: confirms; the address joins `subscribe.list` and gets
//!   every issue made after that.
//!
//! Tokens are 128 bits from the operating system's generator, stored as SHA-256, valid for 72
//! hours; confirming twice is harmless. No email goes out for a filled honeypot, a form posted
//! faster than a person could fill it, a malformed address, more than 5 requests an hour from
//! one client (governor's keyed limiter; the client is the TCP peer, or the last
//! `X-Forwarded-For` entry when the peer is `server.trusted_proxy`; an IPv6 client is its /64),
//! a second confirmation to one mailbox while one is queued or within an hour of one *sent*.
//! One mailbox has one form ([`mailbox`]): `"kato"@example.jp` is `kato@example.jp`, and an
//! internationalized domain is its IDNA ASCII form (RFC 5890), so neither starts a new hour.
//! The confirmation never greets the reader by the name the form was given: anyone can type
//! anything there, and the mail goes out from the office.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{TimeDelta, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::html;
use serde::Deserialize;

use crate::config::Config;
use crate::deliver::single::{send_one, One};
use crate::server::{page, AppState};
use crate::store::{signups::digest, SignupRequest, Store};
use crate::unsubscribe::Link;

pub mod confirmations;
mod rule;
pub use rule::CONFIRMATION_PAUSE;

/// How long a confirmation link works.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(72);
/// A form sent back sooner than this after it was shown was not filled in by a person.
pub const MIN_FORM_SECONDS: i64 = 3;
/// Requests per client per hour.
const PER_CLIENT_PER_HOUR: u32 = 5;

/// The per-client request limit, shared by the server's handlers.
pub struct Limits {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        let n = NonZeroU32::new(PER_CLIENT_PER_HOUR).expect("non-zero");
        Limits {
            per_client: RateLimiter::keyed(Quota::per_hour(n)),
        }
    }
}

/// What the form posts.
#[derive(Debug, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    /// The honeypot: people never see it, so it stays empty.
    #[serde(default)]
    website: String,
    /// When the form was shown ([`crate::unsubscribe::Key::form_stamp`]); absent from the
    /// form pasted into the blog.
    #[serde(default)]
    t: Option<String>,
}

/// `GET /subscribe`.
pub async fn form_page(State(s): State<AppState>) -> Response {
    let Some(sub) = &s.config.subscribe else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let stamp = s.key.form_stamp(Utc::now().timestamp());
    let consent = sub.consent(&s.config);
    page(&s.config, "メール配信のお申し込み", html! {
        h1 { "メール配信のお申し込み" }
        p { "「" (s.config.site.title) "」をメールでお届けします。ご入力のアドレスに確認のメールをお送りしますので、そのメールから登録を確定してください。" }
        form method="post" action="/subscribe" {
            p {
                label for="email" { "メールアドレス（必須）" } br;
                input type="email" id="email" name="email" required autocomplete="email" aria-describedby="consent" style="box-sizing: border-box; width: 100%; max-width: 24em; font-size: 16px; padding: 6px;";
            }
            p id="consent" class="consent" { (consent) }
            p {
                label for="name" { "お名前（任意）" } br;
                input type="text" id="name" name="name" autocomplete="name" style="box-sizing: border-box; width: 100%; max-width: 24em; font-size: 16px; padding: 6px;";
            }
            div style="position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden;" {
                label for="website" { "この欄には何も入力しないでください" }
                input type="text" id="website" name="website" tabindex="-1" autocomplete="off";
            }
            input type="hidden" name="t" value=(stamp);
            p { button type="submit" style="font-size: 16px; padding: 8px 16px;" { "確認メールを送る" } }
        }
    })
    .into_response()
}

/// `POST /subscribe`: the same page whatever happened (403 for a foreign `Origin`).
pub async fn request(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Response {
    if s.config.subscribe.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !same_origin(&s.config, &headers) {
        tracing::info!(origin = ?headers.get(header::ORIGIN), "sign-up from another site refused");
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    }
    let client = client_ip(peer, &headers, s.config.server.trusted_proxy);
    match screen(&s, &f, client) {
        Err(why) => tracing::info!(%client, why, "sign-up request dropped"),
        Ok(email) => {
            let state = s.clone();
            let name = f.name.trim().to_string();
            s.tasks.spawn(async move {
                match record_request(&state, email, name, client).await {
                    Ok(true) => state.confirmations.notify_one(),
                    Ok(false) => tracing::info!(
                        "sign-up request: no new confirmation (already subscribed, one queued, or one sent within the hour)"
                    ),
                    Err(e) => tracing::error!("sign-up request not recorded: {e:#}"),
                }
            });
        }
    }
    page(&s.config, "確認メールをお送りしました", html! {
        h1 { "確認メールをお送りしました" }
        p { "ご入力のアドレスに、登録を確定するためのメールをお送りしました。メールのリンクを開き、ボタンを押すと登録が完了します（有効期限は72時間です）。" }
        p { "数分たってもメールが届かない場合は、アドレスをご確認のうえ、しばらくしてからもう一度お試しください。" }
    })
    .into_response()
}

/// A POST with no `Origin` (not a browser, or an old one), or from the newsletter's own pages
/// (`server.public_url` or `site.url`, RFC 6454 origins).
fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    [
        config.server.public_url.as_deref(),
        Some(config.site.url.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter_map(|u| url::Url::parse(u).ok())
    .any(|u| {
        u.origin()
            .ascii_serialization()
            .eq_ignore_ascii_case(origin.trim())
    })
}

/// Why a request gets no email, or the mailbox to confirm when it passes every check.
fn screen(s: &AppState, f: &SignupForm, client: IpAddr) -> Result<String, &'static str> {
    if s.signup
        .per_client
        .check_key(&crate::server::client_key(client))
        .is_err()
    {
        return Err("too many requests from this client");
    }
    if !f.website.is_empty() {
        return Err("honeypot filled");
    }
    if let Some(stamp) = &f.t {
        match s.key.form_age(stamp, Utc::now().timestamp()) {
            None => return Err("forged form stamp"),
            Some(age) if age < MIN_FORM_SECONDS => return Err("posted faster than a person could"),
            Some(age) if age > 24 * 3600 => return Err("form shown more than a day ago"),
            Some(_) => {}
        }
    }
    let Some(email) = mailbox(&f.email).filter(|e| plausible(e)) else {
        return Err("malformed address");
    };
    if f.name.chars().any(char::is_control) || f.name.len() > 200 {
        return Err("malformed name");
    }
    Ok(email)
}

/// The one form of the mailbox an address names: a quoted local part that needs no quotes
/// loses them (RFC 5321 §4.1.2: `"kato"@example.jp` is `kato@example.jp`), and a domain with
/// non-ASCII labels becomes its IDNA ASCII form (RFC 5890, through `url`'s UTS #46 mapping:
/// `例え.jp` is `xn--r8jz45g.jp`). Lower-cased by [`crate::subscribers::key`], it is the
/// sign-up's key. `None` when the domain is not a domain name.
pub fn mailbox(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let local = unquoted(local)?;
    let url::Host::Domain(ascii) = url::Host::parse(domain).ok()? else {
        return None; // an IP address
    };
    // An ASCII domain keeps the case it was typed in (the key lower-cases it anyway).
    let domain = if domain.is_ascii() { domain } else { &ascii };
    Some(format!("{local}@{domain}"))
}

/// A local part without needless quotes; a quoted one that needs them stays quoted.
fn unquoted(local: &str) -> Option<String> {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return (!local.is_empty()).then(|| local.to_string());
    };
    let mut text = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        // quoted-pair: a backslash quotes the character after it.
        text.push(if c == '\\' { chars.next()? } else { c });
    }
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = text
        .split('.')
        .all(|a| !a.is_empty() && a.chars().all(atext));
    if dot_atom {
        Some(text)
    } else {
        Some(format!(
            "\"{}\"",
            text.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    }
}

/// An address that could receive mail: valid syntax, and a domain with a dot (no IP literal).
fn plausible(email: &str) -> bool {
    let e = email.trim();
    let Ok(a) = e.parse::<lettre::Address>() else {
        return false;
    };
    let domain = a.domain();
    e.len() <= 254 && domain.contains('.') && !domain.starts_with('[') && !domain.ends_with('.')
}

/// The client: the TCP peer, or what the trusted reverse proxy says it is.
fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: Option<IpAddr>) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if trusted.is_some_and(|t| t.to_canonical() == peer_ip) {
        // The proxy appends the address it saw: the last entry. Earlier ones are the client's
        // own claims.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_canonical();
        }
    }
    peer_ip
}

/// Records the request; returns whether a confirmation was queued.
async fn record_request(
    s: &AppState,
    email: String,
    name: String,
    client: IpAddr,
) -> anyhow::Result<bool> {
    let sub = s.config.subscribe.clone().expect("checked by the handler");
    let (root, config) = (s.root.clone(), s.config.clone());
    let keep_ip = sub.keep_ip.then(|| client.to_string());
    tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let store = Store::open(&root)?;
        let req = SignupRequest {
            email: &email,
            name: &name,
            list: &sub.list,
            consent_text: &sub.consent(&config),
            client_ip: keep_ip.as_deref(),
        };
        Ok(rule::request(&store, &req, Utc::now())?)
    })
    .await?
}

/// `GET /subscribe/confirm/<token>`: a button; confirms nothing.
pub async fn confirm_page(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let (root, hash) = (s.root.clone(), digest(&token));
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        match Store::open_read_only(&root)? {
            None => Ok(None),
            Some(st) => Ok(st.signup_by_token(&hash, Utc::now())?),
        }
    })
    .await;
    let signup = match found {
        Ok(Ok(Some(signup))) => signup,
        Ok(Ok(None)) => return not_found(&s.config),
        other => {
            tracing::error!("sign-up not looked up: {other:?}");
            return (StatusCode::SERVICE_UNAVAILABLE, "please try again later\n").into_response();
        }
    };
    page(&s.config, "配信登録の確定", html! {
        h1 { "配信登録の確定" }
        p { (signup.email) " への「" (s.config.site.title) "」の配信を登録します。よろしければ下のボタンを押してください。" }
        form method="post" action={ "/subscribe/confirm/" (token) } {
            button type="submit" style="font-size: 16px; padding: 8px 16px;" { "登録を確定する" }
        }
    })
    .into_response()
}

/// `POST /subscribe/confirm/<token>`: confirms (again, harmlessly).
pub async fn confirm(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let (root, hash) = (s.root.clone(), digest(&token));
    let confirmed = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok(Store::open(&root)?.confirm_signup(&hash, Utc::now())?)
    })
    .await;
    let signup = match confirmed {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return not_found(&s.config),
        other => {
            tracing::error!("sign-up not confirmed: {other:?}");
            return (StatusCode::SERVICE_UNAVAILABLE, "please try again later\n").into_response();
        }
    };
    tracing::info!(address = %signup.address, "sign-up confirmed");
    if s.config.subscribe.as_ref().is_some_and(|c| c.welcome) {
        let state = s.clone();
        let (email, name) = (signup.email.clone(), signup.name.clone());
        let blocking = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Handle::current();
            if let Err(e) = rt.block_on(welcome(&state, &email, &name)) {
                tracing::error!("welcome email not sent: {e:#}");
            }
        });
        s.tasks.spawn(blocking);
    }
    page(&s.config, "登録が完了しました", html! {
        h1 { "登録が完了しました" }
        p { "「" (s.config.site.title) "」を次号から " (signup.email) " にお届けします。配信の停止は、各メールの末尾のリンクからいつでもできます。" }
    })
    .into_response()
}

/// The welcome email (run on a blocking thread: CSS, DKIM key and store are files).
async fn welcome(s: &AppState, email: &str, name: &str) -> anyhow::Result<()> {
    let css = crate::render::load_css(&s.root)?;
    let rendered = crate::render::email::welcome(&s.config, &css)?;
    let reader = Link::Reader(&s.key, email);
    let unsubscribe = crate::unsubscribe::unsubscribe_url(&s.config.public_base(), reader);
    let one = One {
        to: email,
        name,
        unsubscribe_url: &unsubscribe,
        kind: "welcome",
    };
    send_one(&s.root, &s.config, &rendered, one).await?;
    Ok(())
}

fn not_found(config: &Config) -> Response {
    let body = page(
        config,
        "見つかりません",
        html! {
            h1 { "リンクが無効です" }
            p { "このリンクは有効期限が切れたか、正しくありません。お手数ですが、もう一度お申し込みください。" }
        },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

/// `tayori subscribe-snippet`: a form to paste into the blog, posting to `<public_url>/subscribe`
/// (no JavaScript; the same fields and honeypot as the form served here).
pub fn snippet(config: &Config) -> String {
    let consent = config
        .subscribe
        .as_ref()
        .map(|s| s.consent(config))
        .unwrap_or_default();
    let action = format!("{}/subscribe", config.public_base());
    html! {
        form method="post" action=(action) class="tayori-subscribe" {
            p {
                label for="tayori-email" { "メールアドレス（必須）" } br;
                input type="email" id="tayori-email" name="email" required autocomplete="email" aria-describedby="tayori-consent";
            }
            p id="tayori-consent" { (consent) }
            p {
                label for="tayori-name" { "お名前（任意）" } br;
                input type="text" id="tayori-name" name="name" autocomplete="name";
            }
            div style="position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden;" {
                label for="tayori-website" { "この欄には何も入力しないでください" }
                input type="text" id="tayori-website" name="website" tabindex="-1" autocomplete="off";
            }
            p { button type="submit" { "確認メールを送る" } }
        }
    }
    .into_string()
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(email: &str) -> Option<String> {
        mailbox(email).map(|m| crate::subscribers::key(&m))
    }

    #[test]
    fn one_mailbox_has_one_key_however_it_is_written() {
        let plain = key("victim@target.example");
        assert_eq!(plain.as_deref(), Some("victim@target.example"));
        assert_eq!(key("\"victim\"@target.example"), plain);
        assert_eq!(key(" Victim@Target.Example "), plain);
        assert_eq!(key("\"vic\\tim\"@target.example"), plain, "a quoted pair");
        let idn = key("victim@xn--r8jz45g.jp");
        assert_eq!(key("victim@例え.jp"), idn);
        assert_eq!(key("victim@例え.JP"), idn);
        assert_eq!(
            mailbox("Kato@例え.jp").as_deref(),
            Some("Kato@xn--r8jz45g.jp")
        );
        assert_eq!(
            mailbox("Yoko.Kato@Example.JP").as_deref(),
            Some("Yoko.Kato@Example.JP"),
            "an ASCII address is sent to as typed"
        );
    }

    #[test]
    fn a_quoted_local_part_that_needs_its_quotes_keeps_them_and_ip_domains_are_no_mailbox() {
        assert_eq!(
            mailbox("\"a b\"@example.jp").as_deref(),
            Some("\"a b\"@example.jp")
        );
        assert_ne!(key("\"a b\"@example.jp"), key("ab@example.jp"));
        assert_eq!(mailbox("a@[192.0.2.1]"), None);
        assert_eq!(mailbox("a@192.0.2.1"), None);
        assert_eq!(mailbox("no-at-sign"), None);
    }
}
