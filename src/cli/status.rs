//! `tayori status`: issues and deliveries, posts waiting, suppressed addresses, the webhook
//! queue and the lists' problems; with `--subscriber`, one person's record. Every time is shown
//! in `site.timezone`, to the second.

use std::path::Path;
use std::process::ExitCode;

use crate::files;
use crate::store::{Store, StoreError};
use crate::subscribers;

/// `status --feeds`: each fetcher's latest count per feed over the last 7 days.
fn feed_readers(store: &Store, tz: &chrono_tz::Tz) -> Result<(), StoreError> {
    let since = chrono::Utc::now() - crate::readers::WINDOW;
    let fetchers = store.feed_fetchers(since)?;
    println!(
        "feed readers: {} (the latest count each feed service gave for each feed, last 7 days)",
        fetchers.iter().map(|f| f.subscribers).sum::<u64>()
    );
    for f in fetchers {
        println!(
            "  {:>6}  {}  {}  (seen {})",
            f.subscribers,
            f.fetcher,
            f.feed,
            local(&f.seen_at, tz)
        );
    }
    Ok(())
}

/// When the next issue can go: the first tick not on a day without an issue, and the ticks
/// that pass before it (calendar).
fn next_tick(config: &crate::config::Config, tz: &chrono_tz::Tz) {
    let Some(schedule) = config.schedule.get() else {
        return;
    };
    let now = chrono::Utc::now().with_timezone(tz);
    let calendar = crate::calendar::Calendar::of(config);
    let (next, passed) = calendar.next_sending_tick(schedule, &now);
    match next {
        Some(t) => println!("next tick that sends: {}", t.format("%Y-%m-%d %H:%M (%a)")),
        None => println!("next tick that sends: none (every tick falls on a day without an issue)"),
    }
    for (t, why) in passed {
        println!("  passes: {}  {why}", t.format("%Y-%m-%d %H:%M (%a)"));
    }
}

/// `status [--subscriber ADDR | --feeds]`.
pub fn status(root: &Path, subscriber: Option<&str>, feeds: bool) -> anyhow::Result<ExitCode> {
    // Printing into a closed pipe (`tayori status | head`) ends the command quietly.
    super::quiet_on_broken_pipe();
    let config = crate::config::load_lenient(root);
    let tz = config.as_ref().map_or(chrono_tz::Asia::Tokyo, |c| c.tz());
    let store = Store::open_read_only(root)?;
    if let Some(addr) = subscriber {
        subscriber_record(root, store.as_ref(), addr, &tz)?;
        return Ok(ExitCode::SUCCESS);
    }
    let problems = subscribers::each(&root.join("subscribers"), |_| {});
    let Some(store) = store else {
        println!(
            "no state store yet: nothing has been published (run `tayori build` or `tayori send`)"
        );
        super::print_problems(&problems.all().cloned().collect::<Vec<_>>());
        return Ok(ExitCode::SUCCESS);
    };
    if feeds {
        feed_readers(&store, &tz)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(h) = crate::lock::holder(root) {
        println!(
            "sending: {} holds this folder's sender lock",
            h.describe(&tz)
        );
    }
    issues(&store, &tz)?;
    println!("feed readers: {}", crate::readers::total(&store)?);
    if let Some(c) = &config {
        progress(&store, c)?;
    }
    invalid_posts(root, config.as_ref());
    let waiting = store.pending_posts()?;
    println!(
        "posts waiting for the next issue: {}",
        if waiting.is_empty() {
            "none".to_string()
        } else {
            waiting.join(", ")
        }
    );
    if let Some(c) = &config {
        next_tick(c, &tz);
    }
    let approval = config
        .as_ref()
        .is_some_and(|c| c.editor.as_ref().is_some_and(|e| e.approval));
    if let Some(line) = crate::editor::gate_line(&store, approval)? {
        println!("{line}");
    }
    // A store not yet migrated by this version has no office tables: nothing to say then.
    let alerts = store.active_alerts().unwrap_or_default();
    if !alerts.is_empty() {
        println!("alerts to the office: {}", alerts.join(", "));
    }
    let office = store.editor_mail_waiting().map_or(0, |w| w.len());
    if office > 0 {
        println!(
            "editor mail waiting: {office} (not taken by the relay yet; tried again by itself)"
        );
    }
    let suppressed = store.suppressions()?;
    println!("suppressed addresses: {}", suppressed.len());
    for (address, reason, at) in suppressed {
        println!("  {address}  {}  {reason}", local(&at, &tz));
    }
    if let Some(c) = &config {
        targets(&store, c)?;
    }
    webhooks(&store, &tz)?;
    bounces(&store)?;
    if config
        .as_ref()
        .is_some_and(|c| crate::editor::inbox::url(c).is_some())
    {
        for line in crate::editor::inbox::status_lines(&store, |t| local(t, &tz)) {
            println!("{line}");
        }
    }
    for p in &problems.unreadable {
        println!("unreadable subscriber list (no issue is made until it is fixed): {p}");
    }
    println!("invalid subscriber rows: {}", problems.rows.len());
    for p in &problems.rows {
        println!("  {p}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The post files that are not valid posts now, each with why (as `check` says it).
fn invalid_posts(root: &Path, config: Option<&crate::config::Config>) {
    let opts = match config {
        Some(c) => crate::content::IngestOptions::from_config(c),
        None => crate::content::IngestOptions::new("https://example.invalid/"),
    }
    .with_media_cache(root, false);
    match crate::publish::scan(root, &opts) {
        Ok(scan) => {
            println!("invalid posts: {}", scan.problems.len());
            for p in &scan.problems {
                println!("  {p}");
            }
        }
        Err(e) => println!("posts cannot be listed: {}: {}", e.path.display(), e.source),
    }
}

/// An RFC 3339 time from the store as a person reads it: `2026-11-23 09:00:00 +09:00`.
fn local(rfc3339: &str, tz: &chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(tz)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// One subscriber: their rows in the lists (with the consent record), suppression, deliveries.
fn subscriber_record(
    root: &Path,
    store: Option<&Store>,
    addr: &str,
    tz: &chrono_tz::Tz,
) -> Result<(), StoreError> {
    let key = subscribers::key(addr);
    let mut found = false;
    subscribers::each(&root.join("subscribers"), |s| {
        if subscribers::key(s.email) == key {
            found = true;
            println!(
                "{}  list {} ({}:{})  name {}  subscribed_at {}  source {}",
                s.email,
                s.list,
                files::display(s.origin).display(),
                s.line,
                s.name,
                s.subscribed_at.unwrap_or("-"),
                s.source.unwrap_or("-")
            );
            if s.consent_method
                .or(s.consent_at)
                .or(s.consent_note)
                .is_some()
            {
                println!(
                    "  consent: {} at {}  {}",
                    s.consent_method.unwrap_or("-"),
                    s.consent_at.unwrap_or("-"),
                    s.consent_note.unwrap_or("")
                );
            }
        }
    });
    let Some(store) = store else {
        if !found {
            println!("{addr}: not in any list");
        }
        return Ok(());
    };
    match store.signup(&key)? {
        Some(s) => {
            println!(
                "{}  list {} (sign-up by {})  name {}  state {}",
                s.email, s.list, s.method, s.name, s.state
            );
            let t = |v: &Option<String>| v.as_deref().map_or("-".into(), |v| local(v, tz));
            println!(
                "  requested {}  confirmed {}  unsubscribed {}  client {}",
                local(&s.requested_at, tz),
                t(&s.confirmed_at),
                t(&s.unsubscribed_at),
                s.client_ip.as_deref().unwrap_or("-")
            );
            if let Some(text) = &s.consent_text {
                println!("  consent text shown: {text}");
            }
            if let Some(note) = &s.consent_note {
                println!("  consent note: {note}");
            }
        }
        None if !found => println!("{addr}: not in any list"),
        None => {}
    }
    if let Some(at) = store.last_sent(&key)? {
        println!("last sent: {}", local(&at, tz));
    }
    for (at, cause, status, diagnostic) in store.bounces_of(&key)? {
        println!("bounce {}: {cause} {status} {diagnostic}", local(&at, tz));
    }
    if let Some((_, reason, at)) = store.suppressions()?.into_iter().find(|s| s.0 == key) {
        println!("suppressed since {}: {reason}", local(&at, tz));
    }
    for d in store.deliveries_to(&key)? {
        println!(
            "issue {}: {} (attempts {}) {} {}",
            d.issue,
            d.state,
            d.attempts,
            d.updated_at.map(|t| local(&t, tz)).unwrap_or_default(),
            d.last_reply.unwrap_or_default()
        );
    }
    Ok(())
}

/// Every issue with its counts, and each failed address with the server's reply.
fn issues(store: &Store, tz: &chrono_tz::Tz) -> Result<(), StoreError> {
    println!("issues:");
    let issues = store.issue_counts()?;
    if issues.is_empty() {
        println!("  none yet");
    }
    for i in &issues {
        println!(
            "  #{} {} {:7} sent {}  pending {}  sending {}  failed {}  「{}」",
            i.id,
            local(&i.created_at, tz),
            i.state,
            i.sent,
            i.pending,
            i.sending,
            i.failed,
            i.subject
        );
        for (email, attempts, reply) in store.deliveries_in(i.id, "failed")? {
            println!(
                "    failed {email} after {attempts} attempt(s): {}",
                reply.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// The unfinished issue's progress per paced group (the carriers) and for every other domain.
fn progress(store: &Store, config: &crate::config::Config) -> Result<(), StoreError> {
    let Some(issue) = store.unfinished_issue()? else {
        return Ok(());
    };
    let groups = crate::deliver::pacing::groups(config);
    let mut by_group: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (domain, sent, open) in store.progress_by_domain(issue.id)? {
        let name = crate::deliver::pacing::group_of(&groups, &format!("x@{domain}"))
            .map_or("other domains".to_string(), |g| groups[g].name.clone());
        let e = by_group.entry(name).or_default();
        e.0 += sent;
        e.1 += open;
    }
    println!("issue #{} in progress:", issue.id);
    for (name, (sent, open)) in by_group {
        println!("  {name}: {sent} sent, {open} to go");
    }
    Ok(())
}

/// Each issue's bounce rate (warned above 2 %: carriers block senders near 4–5 %), and the
/// reports kept in the mailbox because they matched no subscriber.
/// How many kept bounce reports `status` lists one by one.
const KEPT_SHOWN: usize = 20;

fn bounces(store: &Store) -> Result<(), StoreError> {
    for (issue, bounced, sent) in store.bounce_rates()? {
        if bounced == 0 || sent == 0 {
            continue;
        }
        let rate = 100.0 * bounced as f64 / sent as f64;
        let warn = if rate > 2.0 {
            "  WARNING: above 2 %; carriers block senders near 4–5 %"
        } else {
            ""
        };
        println!("bounces of issue #{issue}: {bounced} of {sent} sent ({rate:.1} %){warn}");
    }
    let kept = store.kept_reports()?;
    if !kept.is_empty() {
        println!("bounce reports kept in the mailbox: {}", kept.len());
        // A flood of junk reports is a count, not a screenful per report.
        let mut by_why: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, why) in &kept {
            *by_why.entry(why.as_str()).or_default() += 1;
        }
        if kept.len() > KEPT_SHOWN {
            for (why, n) in &by_why {
                println!("  {n:>6}  {why}");
            }
        }
        for (id, why) in kept.iter().take(KEPT_SHOWN) {
            println!("  {id}  {why}");
        }
        if kept.len() > KEPT_SHOWN {
            println!("  … and {} more", kept.len() - KEPT_SHOWN);
        }
    }
    Ok(())
}

/// One line per cross-post target: its queue by state, and why it stopped if it did.
fn targets(store: &Store, config: &crate::config::Config) -> Result<(), StoreError> {
    use crate::crosspost::Target;
    let events = store.crosspost_events()?;
    for t in Target::ALL.into_iter().filter(|t| t.enabled(config)) {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in events.iter().filter(|e| t.owns(&e.event)) {
            *counts.entry(e.state.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let counts = if counts.is_empty() {
            "nothing queued yet".to_string()
        } else {
            counts.join(", ")
        };
        let stopped = store.meta(&t.stopped_key())?.filter(|m| !m.is_empty());
        match stopped {
            Some(why) => println!(
                "cross-post {}: {counts} — {why}; fix it and restart",
                t.name()
            ),
            None => println!("cross-post {}: {counts}", t.name()),
        }
    }
    Ok(())
}

/// The webhook queue, each event with every attempt's status.
fn webhooks(store: &Store, tz: &chrono_tz::Tz) -> Result<(), StoreError> {
    let events = store.crosspost_events()?;
    println!("webhook events: {}", events.len());
    for e in events {
        let attempts: Vec<String> = store
            .crosspost_attempts(&e.id)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        println!(
            "  {} {} {} {}  attempts: {}",
            local(&e.created_at.to_rfc3339(), tz),
            e.event,
            e.slug,
            e.state,
            if attempts.is_empty() {
                "none yet".to_string()
            } else {
                attempts.join(", ")
            }
        );
    }
    Ok(())
}
