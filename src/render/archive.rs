//! The web archive: `public/index.html` and `public/posts/<slug>.html`, built from the same
//! components as the email.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::components::{post, Placement};
use super::{display_date, Entry};
use crate::config::Config;

/// A page of the site: head with the feeds, masthead, `body`, footer. Pages that ask for an
/// action (confirm, unsubscribe) have no other form: see [`archive_page`] for the search box.
pub fn page(config: &Config, title: &str, css: &str, body: Markup) -> String {
    page_with(config, title, css, body, false)
}

/// [`page`] with the search box in the masthead: the archive's pages and the search page.
pub fn archive_page(config: &Config, title: &str, css: &str, body: Markup) -> String {
    page_with(config, title, css, body, true)
}

fn page_with(config: &Config, title: &str, css: &str, body: Markup, search: bool) -> String {
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
                @if let Some(icon) = &config.site.icon { link rel="icon" href=(icon); }
                style { (PreEscaped(css)) }
            }
            body {
                table class="wrapper" role="presentation" { tr { td class="wrapper-cell" {
                    table class="container" role="presentation" {
                        tr { td class="masthead" {
                            p class="site-title" { a href={ (base) "/" } { (config.site.title) } }
                            @if search { (search_box(config, "")) }
                        } }
                        tr { td class="content" { (body) } }
                        tr { td class="footer" {
                            p {
                                a href={ (base) "/feed.xml" } { "RSS" } " · "
                                a href={ (base) "/atom.xml" } { "Atom" }
                            }
                            @if let Some(l) = super::lawyer_line(config) { p { (l) } }
                            @if let Some(a) = &config.sender.address { p { (a) } }
                        } }
                    }
                } } }
            }
        }
    }
    .into_string()
}

/// The search box on every archive page: `GET <public_url>/search?q=…`.
pub fn search_box(config: &Config, query: &str) -> Markup {
    html! {
        form class="search" role="search" method="get" action={ (config.public_base()) "/search" } {
            input type="search" name="q" value=(query) aria-label="記事を検索" placeholder="記事を検索（例: 親権）" maxlength="1000";
            " "
            button type="submit" { "検索" }
        }
    }
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
    archive_page(config, &title, css, body)
}

/// How many of the newest posts `index.html` shows; the rest are on the year pages.
pub const INDEX_POSTS: usize = 20;

/// A year of the archive and how many posts it holds, newest year first.
pub type Years = [(i32, usize)];

/// `index.html`: the newest [`INDEX_POSTS`] posts with their summaries, then a link to each
/// year's page. Its size no longer grows with the archive.
pub fn index_page(config: &Config, newest: &[&Entry], years: &Years, css: &str) -> String {
    let tz = config.tz();
    let base = config.public_base();
    let body = html! {
        h1 { (config.site.title) }
        @if newest.is_empty() { p { "まだ記事はありません。" } }
        @for e in newest {
            div class="post" {
                h2 { a href={ (base) "/posts/" (e.post.slug) ".html" } { (e.post.title) } }
                p class="date" { (display_date(&e.published, &tz)) }
                p { (e.post.summary()) }
            }
        }
        (year_links(&base, years, None))
    };
    archive_page(config, &config.site.title, css, body)
}

/// `archive/<year>.html`: every post of one year, newest first, title and date only.
pub fn year_page(
    config: &Config,
    year: i32,
    entries: &[&Entry],
    years: &Years,
    css: &str,
) -> String {
    let tz = config.tz();
    let base = config.public_base();
    let body = html! {
        h1 { (year) "年の記事" }
        ul class="archive-list" {
            @for e in entries {
                li {
                    a href={ (base) "/posts/" (e.post.slug) ".html" } { (e.post.title) }
                    " "
                    span class="date" { (display_date(&e.published, &tz)) }
                }
            }
        }
        (year_links(&base, years, Some(year)))
    };
    let title = format!("{year}年の記事 | {}", config.site.title);
    archive_page(config, &title, css, body)
}

/// The list of year pages; the current one is not a link.
fn year_links(base: &str, years: &Years, current: Option<i32>) -> Markup {
    html! {
        @if !years.is_empty() {
            nav class="archive-years" aria-label="年別の記事一覧" {
                h2 { "年別の記事一覧" }
                ul {
                    @for (year, count) in years {
                        li {
                            @if current == Some(*year) {
                                strong { (year) "年" } " (" (count) ")"
                            } @else {
                                a href={ (base) "/archive/" (year) ".html" } { (year) "年" } " (" (count) ")"
                            }
                        }
                    }
                }
            }
        }
    }
}
