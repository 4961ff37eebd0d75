//! The public sign-up, double opt-in (with `subscribe:` in the configuration):
//!
//! - `GET /subscribe`: the form — address, optional name, the consent text right beside the
//!   address, a honeypot field `website` people never see, and a signed stamp of when it was
//!   shown;
//! - `POST /subscribe`: always the same page ("確認メールをお送りしました"), whatever the address,
//!   so nobody can learn who is subscribed. Only a request that passes every check gets one
//!   confirmation email, sent in the background at once (the answer takes as long either way);
//! - `GET /subscribe/confirm/<token>`: a page with a button; it confirms nothing, since mail
//!   scanners follow links;
//! - `POST /subscribe/confirm/<token>`: confirms; the address joins `subscribe.list` and gets
//!   every issue made after that.
//!
//! Tokens are 128 bits from the operating system's generator, stored as SHA-256, valid for 72
//! hours; confirming twice is harmless. No email goes out for a filled honeypot, a form posted
//! faster than a person could fill it, a malformed address, more than 5 requests an hour from
//! one client (governor's keyed limiter; the client is the TCP peer, or the last
//! `X-Forwarded-For` entry when the peer is `server.trusted_proxy`), or a second confirmation to
//! one address within an hour.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{TimeDelta, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::html;
use serde::Deserialize;

use crate::config::Config;
use crate::deliver::single::{send_one, One};
use crate::server::{page, AppState};
use crate::store::{signups::digest, SignupRequest, Store};

/// How long a confirmation link works.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(72);
/// A form sent back sooner than this after it was shown was not filled in by a person.
pub const MIN_FORM_SECONDS: i64 = 3;
/// At most one confirmation email per address in this time.
pub const CONFIRMATION_PAUSE: TimeDelta = TimeDelta::hours(1);
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

/// `POST /subscribe`: the same page whatever happened.
pub async fn request(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Response {
    if s.config.subscribe.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let client = client_ip(peer, &headers, s.config.server.trusted_proxy);
    match screen(&s, &f, client) {
        Err(why) => tracing::info!(%client, why, "sign-up request dropped"),
        Ok(()) => {
            let state = s.clone();
            tokio::spawn(async move {
                if let Err(e) = confirm_by_email(&state, &f, client).await {
                    tracing::error!("sign-up confirmation not sent: {e:#}");
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

/// Why a request gets no email, or `Ok` when it passes every check.
fn screen(s: &AppState, f: &SignupForm, client: IpAddr) -> Result<(), &'static str> {
    if s.signup.per_client.check_key(&client).is_err() {
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
    if !plausible(&f.email) || f.name.chars().any(char::is_control) || f.name.len() > 200 {
        return Err("malformed address or name");
    }
    Ok(())
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

/// Records the request and, unless the address is already subscribed or was sent a
/// confirmation within the hour, sends the confirmation email.
async fn confirm_by_email(s: &AppState, f: &SignupForm, client: IpAddr) -> anyhow::Result<()> {
    let sub = s.config.subscribe.clone().expect("checked by the handler");
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let token = B64.encode(raw);
    let (root, config) = (s.root.clone(), s.config.clone());
    let (email, name) = (f.email.trim().to_string(), f.name.trim().to_string());
    let token_hash = digest(&token);
    let keep_ip = sub.keep_ip.then(|| client.to_string());
    let send = tokio::task::spawn_blocking({
        let (email, name) = (email.clone(), name.clone());
        move || -> anyhow::Result<bool> {
            let store = Store::open(&root)?;
            let now = Utc::now();
            let req = SignupRequest {
                email: &email,
                name: &name,
                list: &sub.list,
                consent_text: &sub.consent(&config),
                client_ip: keep_ip.as_deref(),
                token_hash: &token_hash,
                expires: now + TOKEN_LIFETIME,
            };
            Ok(store.request_signup(&req, CONFIRMATION_PAUSE, now)?)
        }
    })
    .await??;
    if !send {
        tracing::info!(
            "sign-up request: no confirmation (already subscribed, or sent within the hour)"
        );
        return Ok(());
    }
    let url = format!("{}/subscribe/confirm/{token}", s.config.public_base());
    let css = crate::render::load_css(&s.root)?;
    let rendered = crate::render::email::confirmation(&s.config, &url, &css)?;
    let unsubscribe = format!(
        "{}/unsubscribe/{}",
        s.config.public_base(),
        s.key.token(&email)
    );
    let one = One {
        to: &email,
        name: &name,
        unsubscribe_url: &unsubscribe,
        kind: "confirm",
    };
    let to = send_one(&s.root, &s.config, &rendered, one).await?;
    tracing::info!(%to, "sign-up confirmation sent");
    Ok(())
}

/// `GET /subscribe/confirm/<token>`: a button; confirms nothing.
pub async fn confirm_page(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    let (root, hash) = (s.root.clone(), digest(&token));
    let found = tokio::task::spawn_blocking(move || {
        Store::open_read_only(&root)
            .ok()
            .flatten()
            .and_then(|st| st.signup_by_token(&hash, Utc::now()).ok().flatten())
    })
    .await
    .ok()
    .flatten();
    let Some(signup) = found else {
        return not_found(&s.config);
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
        tokio::spawn(async move {
            if let Err(e) = welcome(&state, &email, &name).await {
                tracing::error!("welcome email not sent: {e:#}");
            }
        });
    }
    page(&s.config, "登録が完了しました", html! {
        h1 { "登録が完了しました" }
        p { "「" (s.config.site.title) "」を次号から " (signup.email) " にお届けします。配信の停止は、各メールの末尾のリンクからいつでもできます。" }
    })
    .into_response()
}

async fn welcome(s: &AppState, email: &str, name: &str) -> anyhow::Result<()> {
    let css = crate::render::load_css(&s.root)?;
    let rendered = crate::render::email::welcome(&s.config, &css)?;
    let unsubscribe = format!(
        "{}/unsubscribe/{}",
        s.config.public_base(),
        s.key.token(email)
    );
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
