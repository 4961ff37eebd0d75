//! The web archive: `public/index.html` and `public/posts/<slug>.html`, built from the same
//! components as the email.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::components::{post, Placement};
use super::{display_date, Entry};
use crate::config::Config;

/// A page of the site: head with the feeds, masthead, `body`, footer.
pub fn page(config: &Config, title: &str, css: &str, body: Markup) -> String {
    let base = config.public_base();
    html! {
        (DOCTYPE)
        html lang=(config.site.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="alternate" type="application/rss+xml" title=(config.site.title) href={ (base) "/feed.xml" };
                link rel="alternate" type="application/atom+xml" title=(config.site.title) href={ (base) "/atom.xml" };
                link rel="alternate" type="application/feed+json" title=(config.site.title) href={ (base) "/feed.json" };
                style { (PreEscaped(css)) }
            }
            body {
                table class="wrapper" role="presentation" { tr { td class="wrapper-cell" {
                    table class="container" role="presentation" {
                        tr { td class="masthead" {
                            p class="site-title" { a href={ (base) "/" } { (config.site.title) } }
                        } }
                        tr { td class="content" { (body) } }
                        tr { td class="footer" {
                            p {
                                a href={ (base) "/feed.xml" } { "RSS" } " · "
                                a href={ (base) "/atom.xml" } { "Atom" }
                            }
                            @if let Some(a) = &config.sender.address { p { (a) } }
                        } }
                    }
                } } }
            }
        }
    }
    .into_string()
}

/// `posts/<slug>.html`: one post.
pub fn post_page(config: &Config, entry: &Entry, css: &str) -> String {
    let tz = config.tz();
    let body = post(
        entry,
        &tz,
        &Placement {
            title_level: 1,
            anchor_prefix: "",
            link_base: "",
            title_link: None,
            keep_sections: None,
        },
    );
    let title = format!("{} | {}", entry.post.title, config.site.title);
    page(config, &title, css, body)
}

/// `index.html`: every published post, newest first.
pub fn index_page(config: &Config, entries: &[Entry], css: &str) -> String {
    let tz = config.tz();
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.published));
    let base = config.public_base();
    let body = html! {
        h1 { (config.site.title) }
        @if sorted.is_empty() { p { "まだ記事はありません。" } }
        @for e in &sorted {
            div class="post" {
                h2 { a href={ (base) "/posts/" (e.post.slug) ".html" } { (e.post.title) } }
                p class="date" { (display_date(&e.published, &tz)) }
                p { (e.post.summary_or_excerpt(120)) }
            }
        }
    };
    page(config, &config.site.title, css, body)
}
