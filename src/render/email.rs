//! The issue email: a table-based 600 px HTML part (CSS inlined) and a text/plain part, both
//! from the same content model, with the footer Japan's 特定電子メール法 requires (sender,
//! postal address, contact, how to unsubscribe).

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::components::{post, Placement};
use super::{display_date, email_text, Entry};
use crate::config::Config;
use crate::content::{escape, Body, Kind};

/// Largest HTML part we send: under Gmail's ~102 KB clipping limit, with room for the personal
/// fields.
pub const MAX_HTML_BYTES: usize = 95_000;

/// Placeholder for the greeting line (`佐藤 花子 様`), filled per subscriber.
pub const GREETING: &str = "%%TAYORI_GREETING%%";
/// Placeholder for the subscriber's unsubscribe URL, filled per subscriber.
pub const UNSUBSCRIBE_URL: &str = "%%TAYORI_UNSUBSCRIBE_URL%%";

/// An issue rendered once, before personalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, never a line break (it is a header).
    pub subject: String,
    /// The hidden preview text shown after the subject in inbox lists.
    pub preheader: String,
    pub html: String,
    pub text: String,
}

/// Why an email could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("an issue needs at least one post")]
    NoPosts,
    #[error("cannot inline the email CSS: {0}")]
    Css(String),
}

/// Renders one issue: articles by date, then notes.
pub fn render(config: &Config, entries: &[&Entry], css: &str) -> Result<Rendered, RenderError> {
    let mut entries: Vec<&Entry> = entries.to_vec();
    entries.sort_by_key(|e| (e.post.kind, e.published));
    let first = entries.first().ok_or(RenderError::NoPosts)?;
    let tz = config.tz();
    let subject = issue_subject(config, &entries, &tz);
    let preheader = entries
        .iter()
        .map(|e| e.post.summary_or_excerpt(80))
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let base = config.public_base();
    let view_url = if entries.len() == 1 {
        format!("{base}/posts/{}.html", first.post.slug)
    } else {
        format!("{base}/")
    };
    let single = entries.len() == 1;
    // The page before CSS inlining, and its text part.
    let build = |entries: &[&Entry], keep: Option<usize>| -> (String, String) {
        let body = html! {
            @if !single {
                h1 { (subject) }
            }
            @for e in entries {
                @let permalink = config.post_url(&e.post.slug);
                (post(e, &tz, &Placement {
                    title_level: if single { 1 } else { 2 },
                    anchor_prefix: &format!("{}-", e.post.slug),
                    // Once trimmed, the table of contents points at the web page.
                    link_base: if keep.is_some() { &permalink } else { "" },
                    title_link: None,
                    keep_sections: keep.map(|k| (k, permalink.as_str())),
                }))
            }
        };
        let page = layout(config, &subject, &preheader, &view_url, body);
        (
            page.into_string(),
            email_text::issue(config, entries, &subject, &view_url, keep),
        )
    };
    let (html, text) = fit_under_the_clip(config, &entries, css, build)?;
    Ok(Rendered {
        subject,
        preheader,
        html,
        text,
    })
}

/// The issue's subject: the one post's title; the article's with `ほか n件`; or, for notes
/// only, the site's title and the date.
fn issue_subject(config: &Config, entries: &[&Entry], tz: &chrono_tz::Tz) -> String {
    let articles: Vec<&&Entry> = entries
        .iter()
        .filter(|e| e.post.kind == Kind::Article)
        .collect();
    let first = entries[0];
    match (articles.as_slice(), entries.len()) {
        (_, 1) => first.post.title.clone(),
        ([only], _) => only.post.title.clone(),
        ([a, ..], n) => format!("{} ほか{}件", a.post.title, n - 1),
        ([], _) => format!(
            "{}（{}）",
            config.site.title,
            display_date(&first.published, tz)
        ),
    }
}

/// The page (HTML with CSS inlined) and its text part, made by `build` with fewer sections,
/// then shorter posts, until the HTML fits under Gmail's clip.
fn fit_under_the_clip(
    config: &Config,
    entries: &[&Entry],
    css: &str,
    build: impl Fn(&[&Entry], Option<usize>) -> (String, String),
) -> Result<(String, String), RenderError> {
    // The page inlined, when it fits. Inlining only adds to a page, so one already over the
    // limit is not inlined: the inliner's tree of a 2 MiB table alone takes a gigabyte.
    let fitted = |page: &str| -> Result<Option<String>, RenderError> {
        if page.len() > MAX_HTML_BYTES {
            return Ok(None);
        }
        let html = inline_css(page, css)?;
        Ok((html.len() <= MAX_HTML_BYTES).then_some(html))
    };
    // Gmail clips messages over ~102 KB, and the unsubscribe footer would go with the clip:
    // a long issue keeps as many sections as fit and links to the rest on the web.
    let most = entries
        .iter()
        .map(|e| e.post.sections.len())
        .max()
        .unwrap_or(0);
    let (mut page, mut text) = build(entries, None);
    let mut html = fitted(&page)?;
    let mut keep = most;
    while html.is_none() && keep > 0 {
        keep = keep.saturating_sub(1.max(keep / 4));
        (page, text) = build(entries, Some(keep));
        html = fitted(&page)?;
    }
    // Still too long (a post without headings, or one enormous section): keep the start of
    // each post's text, paragraph by paragraph, and link to the rest.
    let mut budget = 30_000;
    while html.is_none() && budget > 100 {
        let cut: Vec<Entry> = entries
            .iter()
            .map(|e| cut_entry(config, e, budget))
            .collect();
        let refs: Vec<&Entry> = cut.iter().collect();
        (page, text) = build(&refs, Some(0));
        html = fitted(&page)?;
        budget = budget * 2 / 3;
    }
    // Nothing fits (a title alone over the limit): the last, shortest page, inlined.
    let html = match html {
        Some(html) => html,
        None => inline_css(&page, css)?,
    };
    Ok((html, text))
}

/// The confirmation email of a sign-up (subject with 登録の確認): the link that confirms, in the
/// issue's layout with the same legal footer. The link opens a page whose button confirms.
pub fn confirmation(
    config: &Config,
    confirm_url: &str,
    css: &str,
) -> Result<Rendered, RenderError> {
    let site = &config.site.title;
    let subject = format!("【{site}】配信登録の確認");
    let body = html! {
        h1 { "配信登録の確認" }
        p { "「" (site) "」のメール配信へのお申し込みを受け付けました。" }
        p { "下のリンクを開き、表示されるページのボタンを押すと登録が完了します（リンクの有効期限は72時間です）。" }
        p class="read-more" { a href=(confirm_url) { "登録を確定するページを開く" } }
        p { "お心当たりのない場合は、このメールを破棄してください。登録は行われず、今後メールが届くこともありません。" }
    };
    let text = format!(
        "{site}\n\n{GREETING}\n\n「{site}」のメール配信へのお申し込みを受け付けました。\n次のリンクを開き、表示されるページのボタンを押すと登録が完了します（リンクの有効期限は72時間です）。\n\n{confirm_url}\n\nお心当たりのない場合は、このメールを破棄してください。登録は行われず、今後メールが届くこともありません。\n\n{}",
        email_text::footer(config)
    );
    single(config, subject, body, text, css)
}

/// The welcome email after a sign-up is confirmed (`subscribe.welcome: true`).
pub fn welcome(config: &Config, css: &str) -> Result<Rendered, RenderError> {
    let site = &config.site.title;
    let subject = format!("【{site}】ご登録ありがとうございます");
    let body = html! {
        h1 { "ご登録ありがとうございます" }
        p { "「" (site) "」の配信登録が完了しました。次号からお届けします。" }
    };
    let text = format!(
        "{site}\n\n{GREETING}\n\n「{site}」の配信登録が完了しました。次号からお届けします。\n\n{}",
        email_text::footer(config)
    );
    single(config, subject, body, text, css)
}

fn single(
    config: &Config,
    subject: String,
    body: Markup,
    text: String,
    css: &str,
) -> Result<Rendered, RenderError> {
    let view = format!("{}/", config.public_base());
    let page = layout(config, &subject, &subject, &view, body);
    Ok(Rendered {
        html: inline_css(&page.into_string(), css)?,
        text,
        preheader: subject.clone(),
        subject,
    })
}

/// An editor mail's HTML (to the office, not the readers): the issue's look and stylesheet,
/// without greeting or reader footer; `css` is the email stylesheet (`templates/email.css`)
/// followed by `templates/office.css` when there is one.
pub fn office(
    config: &Config,
    subject: &str,
    body: Markup,
    css: &str,
) -> Result<String, RenderError> {
    let page = html! {
        (DOCTYPE)
        html lang=(config.site.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="supported-color-schemes" content="light dark";
                title { (subject) }
            }
            body {
                div class="preheader" { (subject) }
                table class="wrapper" role="presentation" {
                    tr { td class="wrapper-cell" {
                        table class="container" role="presentation" {
                            tr { td class="masthead" {
                                p class="site-title" { (config.site.title) " — 編集部あて" }
                            } }
                            tr { td class="content" { (body) } }
                            tr { td class="footer" {
                                p { "このメールは tayori が「" (config.site.title) "」の編集担当（editor.to）にお送りしています。読者には届きません。" }
                            } }
                        }
                    } }
                }
            }
        }
    };
    inline_css(&page.into_string(), css)
}

/// A post cut to about `budget` characters of text: its lead and sections become the first
/// paragraphs that fit (as plain paragraphs), then a link to the whole post on the web; the
/// editor's note stays, cut the same way only when it alone is longer than the budget.
fn cut_entry(config: &Config, e: &Entry, budget: usize) -> Entry {
    let p = &e.post;
    let url = config.post_url(&p.slug);
    let mut all = vec![p.lead.text.as_str()];
    for s in &p.sections {
        all.push(&s.title);
        all.push(&s.body.text);
    }
    let mut post = crate::content::Post::clone(p);
    post.lead = excerpt(&all.join("\n\n"), budget, Some((&url, &p.title)));
    post.sections.clear();
    post.toc.clear();
    if let Some(note) = &p.editors_note {
        if note.text.chars().count() > budget {
            post.editors_note = Some(excerpt(&note.text, budget, None));
        }
    }
    Entry {
        post: post.into(),
        published: e.published,
        updated: e.updated,
    }
}

/// The first paragraphs of `text` within `budget` characters (the first one cut when it alone
/// is longer), as text and as escaped HTML paragraphs, ending with a link to `more`.
fn excerpt(text: &str, budget: usize, more: Option<(&str, &str)>) -> Body {
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let n = para.chars().count();
        if used + n > budget {
            if kept.is_empty() {
                kept.push(format!(
                    "{}…",
                    para.chars().take(budget).collect::<String>()
                ));
            }
            break;
        }
        used += n;
        kept.push(para.to_string());
    }
    let mut html: String = kept
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape(p).replace('\n', "<br>")))
        .collect();
    let mut text = kept.join("\n\n");
    if let Some((url, title)) = more {
        let link = html! {
            p class="read-more" { "この記事の続きはウェブでお読みいただけます: " a href=(url) { "「" (title) "」の続きを読む" } }
        };
        html.push_str(&link.into_string());
        text.push_str(&format!(
            "\n\nこの記事の続きはウェブでお読みいただけます: {url}"
        ));
    }
    Body { html, text }
}

fn layout(config: &Config, subject: &str, preheader: &str, view_url: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(config.site.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="supported-color-schemes" content="light dark";
                meta name="format-detection" content="telephone=no, address=no, email=no, date=no";
                title { (subject) }
            }
            body {
                div class="preheader" { (preheader) }
                // Outlook for Windows ignores max-width: its own fixed-width table is in a
                // conditional comment that every other client skips.
                (PreEscaped("<!--[if mso]><table role=\"presentation\" width=\"600\" align=\"center\" cellpadding=\"0\" cellspacing=\"0\"><tr><td><![endif]-->"))
                table class="wrapper" role="presentation" {
                    tr { td class="wrapper-cell" {
                        table class="container" role="presentation" {
                            tr { td class="masthead" {
                                p class="site-title" { (config.site.title) }
                                p class="view-online" { a href=(view_url) { "ブラウザで表示する" } }
                            } }
                            tr { td class="content" {
                                p class="greeting" { (GREETING) }
                                (body)
                            } }
                            tr { td class="footer" { (footer(config)) } }
                        }
                    } }
                }
                (PreEscaped("<!--[if mso]></td></tr></table><![endif]-->"))
            }
        }
    }
}

/// The legal footer (HTML).
fn footer(config: &Config) -> Markup {
    let s = &config.sender;
    let (name, address) = config.sender_parts();
    let contact = s.reply_to.clone().unwrap_or_else(|| address.clone());
    html! {
        p { "このメールは「" (config.site.title) "」の配信にご登録いただいた方にお送りしています。" }
        p {
            "送信者: " (name) br;
            @if let Some(l) = super::lawyer_line(config) { (l) br; }
            @if let Some(a) = &s.address { "住所: " (a) br; }
            @if let Some(t) = &s.phone { "電話: " (t) br; }
            "お問い合わせ: " a href={ "mailto:" (contact) } { (contact) }
        }
        p {
            "配信の停止はこちらから手続きできます: "
            a href=(UNSUBSCRIBE_URL) { "配信を停止する（登録解除）" }
        }
    }
}

fn inline_css(html: &str, css: &str) -> Result<String, RenderError> {
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .keep_at_rules(true)
        .extra_css(Some(css.into()))
        .build();
    let inlined = inliner
        .inline(html)
        .map_err(|e| RenderError::Css(e.to_string()))?;
    // The inliner puts the kept @media rules first in <head>; the charset declaration must
    // come within the first 1024 bytes (HTML §4.2.5.4), so it moves back to the front.
    const CHARSET: &str = "<meta charset=\"utf-8\">";
    Ok(match inlined.find(CHARSET) {
        Some(_) => {
            inlined
                .replacen(CHARSET, "", 1)
                .replacen("<head>", &format!("<head>{CHARSET}"), 1)
        }
        None => inlined,
    })
}

/// The personal fields for one subscriber: the greeting line and the unsubscribe URL, escaped
/// for HTML when `html` is set.
pub fn personal_fields(name: &str, unsubscribe_url: &str, html: bool) -> (String, String) {
    let name = crate::content::one_line(name);
    let greeting = if name.is_empty() {
        "読者の皆さま".to_string()
    } else {
        format!("{name} 様")
    };
    if html {
        (escape(&greeting), escape(unsubscribe_url))
    } else {
        (greeting, unsubscribe_url.to_string())
    }
}

/// Fills the personal fields of a rendered part. `html` selects HTML escaping.
pub fn personalize(part: &str, name: &str, unsubscribe_url: &str, html: bool) -> String {
    let (greeting, url) = personal_fields(name, unsubscribe_url, html);
    part.replace(GREETING, &greeting)
        .replace(UNSUBSCRIBE_URL, &url)
}
