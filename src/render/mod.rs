//! Render: published posts → the email (HTML and text parts), feeds and the web archive.
//!
//! An issue's email is rendered once with placeholders for the few personal fields
//! ([`email::GREETING`], [`email::UNSUBSCRIBE_URL`]); [`email::personalize`] fills them per
//! subscriber.

pub mod archive;
mod components;
pub mod email;
mod email_text;
pub mod feed;

use std::path::Path;

use chrono::{DateTime, Datelike, FixedOffset};

use crate::config::Config;
use crate::content::Post;

/// The built-in email stylesheet (`templates/email.css` of this repository).
pub const DEFAULT_CSS: &str = include_str!("../../templates/email.css");

/// A published post with its publication times.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Shared with the daemon's memory of the file: a build of 5,000 posts copies none.
    pub post: std::sync::Arc<Post>,
    /// When it was published (front matter `date`, else first seen); never moves.
    pub published: DateTime<FixedOffset>,
    /// When its content last changed.
    pub updated: DateTime<FixedOffset>,
}

/// The advertiser line the bar's rules ask of a lawyer's advertisement (日弁連「弁護士の業務
/// 広告に関する規程」第9条: name and 所属弁護士会): `弁護士 山本 さくら（第二東京弁護士会所属）`.
pub fn lawyer_line(config: &Config) -> Option<String> {
    let author = config
        .site
        .author
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let bar = config
        .sender
        .bar_association
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    match (author, bar) {
        (Some(a), Some(b)) => Some(format!("{a}（{b}所属）")),
        (Some(a), None) => Some(a.to_string()),
        (None, Some(b)) => Some(format!("{b}所属")),
        (None, None) => None,
    }
}

/// `2026年11月2日` in the site's time zone.
pub fn display_date(d: &DateTime<FixedOffset>, tz: &chrono_tz::Tz) -> String {
    let d = d.with_timezone(tz);
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

/// The email stylesheet: `templates/email.css` in the newsletter folder, else (no such file)
/// the default. A file that is there but cannot be read is an error: the office's own look
/// must not be swapped for the default without a word.
pub fn load_css(root: &Path) -> std::io::Result<String> {
    let path = root.join("templates").join("email.css");
    match std::fs::read_to_string(&path) {
        Ok(css) => Ok(css),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_CSS.to_string()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", crate::files::display(&path).display()),
        )),
    }
}
