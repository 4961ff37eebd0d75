//! The `tayori` command line (README.md, "Commands").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::content::{self, IngestOptions};
use crate::files;
use crate::message::{self, Recipient};
use crate::problem::Problem;
use crate::publish;
use crate::render::{self, Entry};
use crate::store::Store;
use crate::subscribers;

mod hold;
mod record;
mod send;
mod serve;
mod status;
mod subscribers_cmd;

/// tayori — newsletter from a folder of posts: email, feeds, archive.
#[derive(Debug, Parser)]
#[command(name = "tayori", version, about)]
pub struct Cli {
    /// The newsletter folder (with tayori.yaml, posts/, subscribers/); `init` takes DIR instead.
    #[arg(long, global = true, default_value = ".")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a working newsletter folder with config, sample post and sample list.
    Init {
        /// The folder to create (it must not hold a tayori.yaml yet).
        dir: PathBuf,
    },
    /// Validate config, posts and subscriber lists; one line per problem.
    Check,
    /// Ingest posts and write public/ (feeds, archive); sends nothing.
    Build,
    /// Render the email for one post file as .html, .txt and .eml.
    Preview {
        /// The post file (.md, .markdown, .txt or .docx), in posts/ or anywhere.
        file: PathBuf,
        /// Where to write the three files.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Publish what is due and send the pending issue now.
    Send {
        /// Show what would be sent; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send the next issue to this one address only, without touching the ledger.
        #[arg(long, value_name = "ADDR", conflicts_with = "dry_run")]
        test: Option<String>,
        /// Send the last issue again to the addresses it failed for (after fixing the cause).
        #[arg(long, conflicts_with_all = ["dry_run", "test"])]
        retry_failed: bool,
    },
    /// The daemon: watch, publish, schedule, webhook, HTTP server.
    Run,
    /// Only the HTTP server: feeds, archive, unsubscribe, /healthz and /preview (the next
    /// issue; to this machine only).
    Serve,
    /// Issues, deliveries, suppressed addresses, webhook queue.
    Status {
        /// Everything known about one subscriber (lists, consent record, deliveries).
        #[arg(long, value_name = "ADDR")]
        subscriber: Option<String>,
        /// The feed readers per fetcher (the counts feed services give), over the last 7 days.
        #[arg(long, conflicts_with = "subscriber")]
        feeds: bool,
    },
    /// Subscribers: export every record as CSV, list them, add or remove one by hand.
    Subscribers {
        #[command(subcommand)]
        action: subscribers_cmd::Action,
    },
    /// Print an HTML sign-up form for the blog, posting to <public_url>/subscribe.
    SubscribeSnippet,
    /// The record of one sent issue the bar's rules ask to keep: the message as sent, its HTML
    /// and its recipients (業務広告規程 第11条).
    Record {
        /// The issue number (`tayori status` lists them).
        issue: i64,
        /// Where to write issue-<N>.eml, issue-<N>.html and issue-<N>-recipients.csv.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Hold the pending issue: its ticks pass and nothing goes out until `release`.
    Hold,
    /// Release the pending issue (with editor.approval, this approves it); it goes out at its
    /// tick, or at once if its tick passed while it was held.
    Release,
    /// Check the sender's domain: SPF, DKIM key, DMARC and alignment, the bounce domain's MX.
    Doctor {
        /// Ask this DNS server (IP:PORT) instead of the system's.
        #[arg(long, value_name = "IP:PORT")]
        resolver: Option<std::net::SocketAddr>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `TAYORI_LOG` is a level or `target=level` pairs (`debug`, `info,tayori=debug`); unset or
    // unreadable means `info`. (`Targets` reads that much without a regex engine to build.)
    let filter = std::env::var("TAYORI_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing_subscriber::filter::LevelFilter::INFO)
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
    let root = cli.root.clone();
    let result = match cli.command {
        Command::Init { dir } => init(&dir),
        Command::Check => check(&root),
        Command::Build => build(&root),
        Command::Preview { file, out } => preview(&root, &file, &out),
        Command::Send {
            dry_run,
            test,
            retry_failed,
        } => send::send(&root, dry_run, test.as_deref(), retry_failed),
        Command::Status { subscriber, feeds } => {
            status::status(&root, subscriber.as_deref(), feeds)
        }
        Command::Subscribers { action } => subscribers_cmd::run(&root, action),
        Command::SubscribeSnippet => match load_config(&root) {
            Ok(c) => {
                println!("{}", crate::server::signup::snippet(&c));
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        Command::Doctor { resolver } => doctor(&root, resolver),
        Command::Record { issue, out } => record::record(&root, issue, &out),
        Command::Hold => hold::run(&root, false),
        Command::Release => hold::run(&root, true),
        Command::Serve => serve::serve(&root),
        Command::Run => serve::run(&root),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tayori: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One thread drives every connection: the work is waiting on sockets, and keeping it on one
/// thread saves the cross-thread wake-ups that otherwise cost more CPU than the sending.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Cancels `stop` on SIGINT or SIGTERM.
pub(crate) fn stop_on_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                },
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping: finishing what is in flight");
        stop.cancel();
    });
}

/// Restores the default action of SIGPIPE for a command that only prints: output piped into a
/// reader that stops early (`tayori status | head`) ends the process quietly instead of a panic
/// with a backtrace. Never for `run` or `serve`, whose sockets must not kill the process.
pub(crate) fn quiet_on_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub(crate) fn print_problems(problems: &[Problem]) {
    let mut err = std::io::stderr().lock();
    for p in problems {
        let _ = writeln!(err, "{p}");
    }
}

pub(crate) fn load_config(root: &Path) -> Result<Config, ExitCode> {
    config::load(root).map_err(|problems| {
        print_problems(&problems);
        ExitCode::FAILURE
    })
}

/// `check`: every problem in config, posts and subscribers; exit 1 if any.
fn check(root: &Path) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    let config = match config::load(root) {
        Ok(c) => Some(c),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let config_path = root.join(config::FILE_NAME);
    if let Some(c) = config.as_ref().filter(|c| c.smtp.is_some()) {
        if let Some(why) = config::unreachable_public_url(c) {
            problems.push(Problem::new(&config_path, None, why));
        }
    }
    // Warnings are printed, never an error: the folder works.
    let mut warnings = config.as_ref().map(calendar_warnings).unwrap_or_default();
    if let Err(e) = crate::unsubscribe::Key::load(root, false) {
        problems.push(Problem::new(&config_path, None, e.to_string()));
    }
    // Posts are still checked when the config is broken, with default options.
    let opts = match &config {
        Some(c) => IngestOptions::from_config(c),
        None => IngestOptions::new("https://example.invalid/"),
    }
    .with_media_cache(root, false);
    let posts = match publish::scan(root, &opts) {
        Ok(scan) => {
            problems.extend(scan.problems);
            warnings.extend(scan.posts.iter().flat_map(|p| missing_alt_warnings(p)));
            scan.posts.len()
        }
        Err(e) => {
            problems.push(Problem::new(
                &e.path,
                None,
                format!("cannot list posts: {}", e.source),
            ));
            0
        }
    };
    let (subscribers, sub_problems) = subscribers::count(&root.join("subscribers"));
    problems.extend(sub_problems.all().cloned());
    print_problems(&problems);
    print_problems(&warnings);
    // A warning, not an error: the folder works, but its secrets or readers' addresses are
    // open to every user of the machine.
    for (path, mode) in files::readable_by_others(root) {
        let shown = files::display(&path);
        eprintln!(
            "{}: warning: readable by other users (mode {mode:o}); it holds secrets or subscribers' addresses: chmod 600 {}",
            shown.display(),
            shown.display()
        );
    }
    if problems.is_empty() {
        println!("ok: {posts} posts, {subscribers} subscribers");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// `check`'s warnings about pictures shown without a text alternative (JIS X 8341-3, WCAG 2.x
/// success criterion 1.1.1): readers who listen to their mail hear nothing of them.
fn missing_alt_warnings(post: &content::Post) -> Vec<Problem> {
    post.pictures
        .iter()
        .filter(|p| p.missing_alt)
        .map(|p| {
            Problem::new(
                files::display(&post.source),
                None,
                format!(
                    "warning: picture `{}` has no alt text: say in a few words what it shows (Markdown: ![入口の写真]({}); Word: the picture's Alt Text), for readers who cannot see it",
                    p.reference, p.reference
                ),
            )
        })
        .collect()
}

/// `check`'s warnings about days without an issue: the schedule's next tick falls on one, or
/// Japan's holidays are asked for past the data tayori has. Printed, never an error.
fn calendar_warnings(config: &Config) -> Vec<Problem> {
    let path = Path::new(config::FILE_NAME);
    let Some(schedule) = config.schedule.get() else {
        return Vec::new();
    };
    let calendar = crate::calendar::Calendar::of(config);
    let now = Utc::now().with_timezone(&config.tz());
    let mut warnings = Vec::new();
    let (next, passed) = calendar.next_sending_tick(schedule, &now);
    if let Some((tick, why)) = passed.first() {
        let then = next.map_or("no tick at all".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M").to_string()
        });
        warnings.push(Problem::new(
            path,
            None,
            format!(
                "warning: the next tick, {}, falls on a day without an issue ({why}): the issue waits until {then}",
                tick.format("%Y-%m-%d %H:%M")
            ),
        ));
    }
    let ahead = (now + chrono::TimeDelta::days(60)).date_naive();
    if calendar.holidays_unknown_on(ahead) {
        warnings.push(Problem::new(
            path,
            None,
            format!(
                "warning: calendar.holidays: jp — tayori knows Japan's holidays until {}; update tayori for the next year's list",
                crate::calendar::holidays_until()
            ),
        ));
    }
    warnings
}

/// `build`: publish due posts into `public/`; exit 1 if any post is invalid.
fn build(root: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = Store::open(root)?;
    let report = publish::build(root, &config, &store, Utc::now())?;
    for p in &report.problems {
        eprintln!("{p}; skipped");
    }
    for (slug, at) in &report.scheduled {
        println!("scheduled: {slug} at {}", at.to_rfc3339());
    }
    println!(
        "built {}: {} published ({} new, {} updated), {} invalid",
        files::display(&root.join("public")).display(),
        report.entries.len(),
        report.new.len(),
        report.updated.len(),
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `preview FILE`: the email for one post as `<slug>.html`, `.txt`, `.eml` in `out`.
fn preview(root: &Path, file: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if !content::is_post_file(file) {
        eprintln!(
            "{}: not a post file (expected .md, .markdown, .txt or .docx)",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let posts_dir = root.join("posts");
    let post = match content::ingest(
        file,
        &posts_dir,
        &IngestOptions::from_config(&config).with_media_cache(root, false),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.problem(file));
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = Store::open_read_only(root)?;
    let now = Utc::now();
    let published = publish::published_time(&post, store.as_ref(), now)?;
    let entry = Entry {
        published,
        updated: published,
        post: post.into(),
    };
    let rendered = render::email::render(&config, &[&entry], &render::load_css(root)?)?;
    let (_, from_addr) = config.sender_parts();
    let sample = crate::unsubscribe::Link::Sample("preview");
    let unsubscribe = crate::unsubscribe::unsubscribe_url(&config.public_base(), sample);
    let to = Recipient {
        email: &from_addr,
        name: "",
        unsubscribe_url: &unsubscribe,
        message_id: format!(
            "<preview.{}@{}>",
            &entry.post.hash[..16],
            message::sender_domain(&config)
        ),
    };
    let eml = message::build(&config, &rendered, &to, SystemTime::now())?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let slug = &entry.post.slug;
    let files = [
        (
            format!("{slug}.html"),
            render::email::personalize(&rendered.html, "", &unsubscribe, true).into_bytes(),
        ),
        (
            format!("{slug}.txt"),
            render::email::personalize(&rendered.text, "", &unsubscribe, false).into_bytes(),
        ),
        (format!("{slug}.eml"), eml),
    ];
    for (name, bytes) in files {
        let path = out.join(name);
        files::write_atomic(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}", files::display(&path).display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `doctor`: one line per finding; exit 1 if anything would hurt delivery.
fn doctor(root: &Path, server: Option<std::net::SocketAddr>) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let findings = runtime()?.block_on(async {
        let resolver = crate::doctor::resolver(server)?;
        anyhow::Ok(crate::doctor::check(root, &config, &resolver).await)
    })?;
    for f in &findings {
        println!("{f}");
    }
    Ok(if findings.iter().any(|f| f.hurts) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `init DIR`: a newsletter folder that passes `check` and works on the embedded default.
fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    let config_path = dir.join(config::FILE_NAME);
    if config_path.exists() {
        eprintln!("{}: already exists; nothing changed", config_path.display());
        return Ok(ExitCode::FAILURE);
    }
    for sub in ["posts/notes", "subscribers", "templates"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    // The configuration holds secrets (SMTP, webhook) and the list holds readers' addresses:
    // only the office's own user reads them.
    let write_private = |rel: &str, text: &str| {
        let path = dir.join(rel);
        files::write_private(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    };
    write_private(config::FILE_NAME, INIT_CONFIG)?;
    write_private("subscribers/readers.csv", INIT_LIST)?;
    write("templates/email.css", render::DEFAULT_CSS)?;
    // What the folder makes as it runs stays out of version control: the secret and every
    // subscriber's address are in state/ and outbox/.
    write(".gitignore", "state/\noutbox/\npublic/\nissues.log\n")?;
    // The store is created before the sample post exists, so the sample is not back
    // catalogue: it becomes the first issue of the new folder.
    Store::open(dir)?.close_back_catalogue()?;
    write("posts/welcome.md", INIT_POST)?;
    println!(
        "created {}: edit tayori.yaml, put posts in posts/, then run `tayori --root {} check`",
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

const INIT_CONFIG: &str = include_str!("../../templates/init/tayori.yaml");
const INIT_POST: &str = include_str!("../../templates/init/welcome.md");
const INIT_LIST: &str = include_str!("../../templates/init/readers.csv");
