//! SIGHUP: `tayori.yaml` read again, validated as at start, and taken by the loop — or, when
//! it is invalid, logged and the running configuration kept.
//!
//! What the loop reads takes effect at once: `schedule` (the next tick is worked out anew),
//! `site`, `sender`, `posts`, `smtp`, `pacing`, `bounces.address` and `bounces.poll`, for the
//! next publish and the next issue (an issue being sent finishes as it started). The HTTP
//! server and the cross-posting and mailbox tasks keep what they started with: the keys in
//! [`NEEDS_RESTART`] are said in the log when they changed.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::{next_tick, Daemon, Loop};
use crate::config::{self, Config};

/// How to tell whether a key changed: its value, printed.
type Print = fn(&Config) -> String;

/// The keys a reload does not apply.
const NEEDS_RESTART: &[(&str, Print)] = &[
    ("server", |c| format!("{:?}", c.server)),
    ("subscribe", |c| format!("{:?}", c.subscribe)),
    ("webhook", |c| format!("{:?}", c.webhook)),
    ("wordpress", |c| format!("{:?}", c.wordpress)),
    ("micropub", |c| format!("{:?}", c.micropub)),
    ("websub", |c| format!("{:?}", c.websub)),
    ("bounces.mailbox", |c| {
        format!("{:?}", c.bounces.as_ref().map(|b| &b.mailbox))
    }),
    ("editor.inbox", |c| {
        format!("{:?}", c.editor.as_ref().map(|e| &e.inbox))
    }),
];

/// The sections `old` has and `new` lacks.
fn dropped_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    let had = |c: &Config| {
        [
            ("smtp:", c.smtp.is_some()),
            ("bounces:", c.bounces.is_some()),
            ("webhook:", c.webhook.is_some()),
            ("subscribe:", c.subscribe.is_some()),
            ("wordpress:", c.wordpress.is_some()),
            ("micropub:", c.micropub.is_some()),
            ("websub:", c.websub.is_some()),
            ("editor:", c.editor.is_some()),
            ("calendar:", c.calendar.is_some()),
            ("records:", c.records.is_some()),
        ]
    };
    had(old)
        .into_iter()
        .zip(had(new))
        .filter(|((_, before), (_, after))| *before && !*after)
        .map(|((name, _), _)| name)
        .collect()
}

impl Loop {
    /// Reads `tayori.yaml` again (SIGHUP).
    pub(super) async fn reload(&mut self, d: &mut Daemon) {
        let root = d.root.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&root)).await;
        let new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(problems)) => {
                for p in &problems {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    "SIGHUP: {} not reloaded ({} problem(s) above); the running configuration is kept",
                    config::FILE_NAME,
                    problems.len()
                );
                return;
            }
            Err(e) => {
                tracing::error!("SIGHUP: {} not reloaded: {e}", config::FILE_NAME);
                return;
            }
        };
        // A file saved half-way can still be valid: a reload never drops a section the
        // running configuration has (without `smtp:` an issue would go to outbox/ and count
        // as sent). Dropping one is a restart's decision.
        let dropped = dropped_sections(&d.config, &new);
        if !dropped.is_empty() {
            tracing::error!(
                "SIGHUP: {} not reloaded: it no longer has {} (saved half-way?); the running configuration is kept — restart tayori run to drop them",
                config::FILE_NAME,
                dropped.join(", ")
            );
            return;
        }
        // Validated above: the schedule parses.
        let schedule = match new.schedule.value() {
            Ok(s) => s.clone(),
            Err(e) => {
                tracing::error!("SIGHUP: {} not reloaded: schedule: {e}", config::FILE_NAME);
                return;
            }
        };
        for (key, print) in NEEDS_RESTART {
            if print(&d.config) != print(&new) {
                tracing::warn!(
                    "{}: {key} changed; it takes effect when tayori run is restarted",
                    config::FILE_NAME
                );
            }
        }
        self.schedule = schedule;
        self.tz = new.tz();
        self.next_tick = next_tick(&self.schedule, &self.tz, Utc::now());
        let poll = new.bounces.as_ref().and_then(|b| b.poll_every());
        self.bounces_at = match (self.bounces_at, poll) {
            (_, None) => None,
            (None, Some(_)) => Some(Instant::now()),
            (Some(at), Some(every)) => Some(at.min(Instant::now() + every)),
        };
        d.config = Arc::new(new);
        // Pages show the site's settings: every page is written anew at the next publish.
        d.written = Default::default();
        tracing::info!(
            schedule = %d.config.schedule.text(),
            next_tick = %self.next_tick.map_or("none".into(), |t| t.with_timezone(&self.tz).to_rfc3339()),
            "SIGHUP: {} reloaded",
            config::FILE_NAME
        );
        self.publish(d).await;
    }
}
