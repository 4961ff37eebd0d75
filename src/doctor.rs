//! `tayori doctor`: is the sender's domain set up so that the mail arrives? It looks up, with
//! hickory's resolver (the system's, or `--resolver IP:PORT`):
//!
//! - **SPF** (RFC 7208): a `v=spf1` record at the From domain;
//! - **DKIM** (RFC 6376): the key at `<selector>._domainkey.<domain>` is our private key's;
//! - **DMARC** (RFC 7489): a `v=DMARC1` record at `_dmarc.<domain>`, its policy, and whether
//!   the DKIM domain is aligned with the From domain;
//! - **MX**: the bounce domain can receive the reports.
//!
//! One line per finding, in Japanese and English, saying what to fix; exit 1 if anything
//! would hurt delivery (docomo flags mail whose From domain fails DMARC; Gmail, Yahoo and
//! Outlook require SPF, DKIM and DMARC alignment of bulk senders).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::Config;

/// One finding: which check, whether it hurts delivery, and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `SPF`, `DKIM`, `DMARC` or `MX`.
    pub check: &'static str,
    pub hurts: bool,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.hurts { "NG" } else { "OK" };
        write!(f, "{} {mark}: {}", self.check, self.message)
    }
}

/// The resolver: the system's (`/etc/resolv.conf`), or one DNS server over UDP and TCP (tests
/// point it at a local one). The inbox checks DKIM signatures through the same one.
pub fn resolver(server: Option<SocketAddr>) -> anyhow::Result<TokioResolver> {
    Ok(match server {
        None => TokioResolver::builder_tokio()
            .context("reading the system's DNS configuration")?
            .build()?,
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            let config = ResolverConfig::from_name_servers(vec![ns]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).build()?
        }
    })
}

/// The TXT records at `name` (each record's strings joined), or none.
async fn txt(resolver: &TokioResolver, name: &str) -> Vec<String> {
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Every check, in order.
pub async fn check(root: &Path, config: &Config, resolver: &TokioResolver) -> Vec<Finding> {
    let domain = crate::message::sender_domain(config);
    let mut out = vec![spf(resolver, &domain).await];
    out.push(dkim(root, config, resolver).await);
    out.extend(dmarc(config, resolver, &domain).await);
    out.push(mx(config, resolver, &domain).await);
    out
}

async fn spf(resolver: &TokioResolver, domain: &str) -> Finding {
    let records: Vec<String> = txt(resolver, domain)
        .await
        .into_iter()
        .filter(|t| t.to_ascii_lowercase().starts_with("v=spf1"))
        .collect();
    match records.as_slice() {
        [] => Finding {
            check: "SPF",
            hurts: true,
            message: format!("{domain} に SPF レコードがありません。送信サーバーを許可する TXT レコード（例: v=spf1 include:<送信サービス> -all）を追加してください / no SPF record at {domain}: add a TXT record such as `v=spf1 include:<your relay> -all`"),
        },
        [one] => Finding {
            check: "SPF",
            hurts: false,
            message: format!("{domain}: {one}"),
        },
        _ => Finding {
            check: "SPF",
            hurts: true,
            message: format!("{domain} に SPF レコードが複数あります（無効になります）。1つにまとめてください / {} SPF records at {domain} make SPF fail: merge them into one", records.len()),
        },
    }
}

async fn dkim(root: &Path, config: &Config, resolver: &TokioResolver) -> Finding {
    let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) else {
        return Finding {
            check: "DKIM",
            hurts: true,
            message: "DKIM 署名をしていません。smtp.dkim を設定し、公開鍵を DNS に載せてください / messages are not DKIM-signed: set smtp.dkim and publish its public key".into(),
        };
    };
    let name = format!("{}._domainkey.{}", d.selector, d.domain);
    let ours = match crate::message::dkim::Signer::load(root, d) {
        Ok(s) => s.public_key_der(),
        Err(e) => {
            return Finding {
                check: "DKIM",
                hurts: true,
                message: format!("秘密鍵を読めません / {e}"),
            }
        }
    };
    let published = txt(resolver, &name).await;
    let key = published.iter().find_map(|t| {
        t.split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix("p="))
            .map(|p| p.split_whitespace().collect::<String>())
    });
    use base64::Engine;
    match key.map(|k| base64::engine::general_purpose::STANDARD.decode(k)) {
        None => Finding {
            check: "DKIM",
            hurts: true,
            message: format!("{name} に公開鍵がありません / no DKIM key published at {name}"),
        },
        // Published as SubjectPublicKeyInfo (as usual) or bare: our PKCS #1 key ends it.
        Some(Ok(p)) if !ours.is_empty() && p.ends_with(&ours) => Finding {
            check: "DKIM",
            hurts: false,
            message: format!("{name}: 公開鍵は秘密鍵と一致します / the published key matches ours"),
        },
        Some(_) => Finding {
            check: "DKIM",
            hurts: true,
            message: format!("{name} の公開鍵が秘密鍵と一致しません。smtp.dkim.private_key_file の公開鍵を載せ直してください / the key published at {name} is not the one we sign with: publish the public key of smtp.dkim.private_key_file"),
        },
    }
}

async fn dmarc(config: &Config, resolver: &TokioResolver, domain: &str) -> Vec<Finding> {
    let name = format!("_dmarc.{domain}");
    let record = txt(resolver, &name)
        .await
        .into_iter()
        .find(|t| t.to_ascii_lowercase().starts_with("v=dmarc1"));
    let mut out = Vec::new();
    match &record {
        None => out.push(Finding {
            check: "DMARC",
            hurts: true,
            message: format!("{name} に DMARC レコードがありません。TXT「v=DMARC1; p=none; rua=mailto:…」から始めてください / no DMARC record at {name}: start with `v=DMARC1; p=none; rua=mailto:…`"),
        }),
        Some(r) => {
            let policy = r
                .split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix("p="))
                .unwrap_or("?")
                .to_string();
            out.push(Finding {
                check: "DMARC",
                hurts: false,
                message: format!("{name}: {r}（ポリシー / policy {policy}）"),
            });
        }
    }
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        let aligned = aligned(&d.domain, domain);
        out.push(Finding {
            check: "DMARC",
            hurts: !aligned,
            message: if aligned {
                format!("DKIM の d={} は From のドメインと整合しています / DKIM d={} is aligned with the From domain", d.domain, d.domain)
            } else {
                format!("DKIM の d={} が From のドメイン {domain} と整合していません / DKIM d={} is not aligned with the From domain {domain}: sign with d={domain}", d.domain, d.domain)
            },
        });
    }
    out
}

/// Relaxed alignment: the same domain, or one a subdomain of the other.
fn aligned(a: &str, b: &str) -> bool {
    use crate::subscribers::in_domain;
    in_domain(a, b) || in_domain(b, a)
}

async fn mx(config: &Config, resolver: &TokioResolver, from_domain: &str) -> Finding {
    let domain = config
        .bounces
        .as_ref()
        .and_then(|b| b.address.as_deref())
        .and_then(|a| a.rsplit_once('@'))
        .map_or(from_domain.to_string(), |(_, d)| d.to_string());
    let hosts: Vec<String> = match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(m) => Some(m.exchange.to_string()),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    if hosts.is_empty() {
        Finding {
            check: "MX",
            hurts: true,
            message: format!("{domain} に MX がありません。エラーメール（バウンス）が戻りません / no MX for {domain}: bounce reports cannot come back"),
        }
    } else {
        Finding {
            check: "MX",
            hurts: false,
            message: format!("{domain}: {}", hosts.join(", ")),
        }
    }
}
