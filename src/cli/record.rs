//! `tayori record ISSUE [--out DIR]`: the record of one sent issue that the bar's rules ask a
//! lawyer to keep (日弁連「弁護士の業務広告に関する規程」第11条): the message exactly as sent
//! (for the sample reader), its HTML, and who it went to and when.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;

use super::load_config;
use crate::deliver::next_issue::SAMPLE_READER;
use crate::message::{self, Recipient, Template};
use crate::render::email::{personalize, Rendered};
use crate::store::Store;

/// `record ISSUE --out DIR`: writes `issue-<N>.eml`, `issue-<N>.html` and
/// `issue-<N>-recipients.csv` (`email,name,state,sent_at,reply`).
pub fn record(root: &Path, id: i64, out: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(root) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(store) = Store::open_read_only(root)? else {
        eprintln!("no issue {id}: nothing has been sent from this folder yet");
        return Ok(ExitCode::FAILURE);
    };
    let Some(issue) = store.issue(id)? else {
        eprintln!("no issue {id} (see `tayori status` for the issues there are)");
        return Ok(ExitCode::FAILURE);
    };
    if issue.html.is_empty() && issue.text.is_empty() {
        eprintln!(
            "issue {id}: its record was purged after records.keep ({} days)",
            config.records_keep().num_days()
        );
        return Ok(ExitCode::FAILURE);
    }
    let rendered = Rendered {
        subject: issue.subject.clone(),
        preheader: String::new(),
        html: issue.html.clone(),
        text: issue.text.clone(),
    };
    let (email, name) = SAMPLE_READER;
    let unsubscribe = format!("{}/unsubscribe/preview", config.public_base());
    let to = Recipient {
        email,
        name,
        unsubscribe_url: &unsubscribe,
        message_id: format!("<record.{id}@{}>", message::sender_domain(&config)),
    };
    let sent = SystemTime::from(issue.created_at);
    let mut template = Template::new(&config, &rendered, sent)?.with_feedback_id(&config, id);
    if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
        template = template.with_dkim(crate::message::dkim::Signer::load(root, d)?);
    }
    let eml = template.render(&to)?;
    let html = personalize(&issue.html, name, &unsubscribe, true);
    let recipients = recipients_csv(&store, id)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = [
        (format!("issue-{id}.eml"), eml.into_bytes()),
        (format!("issue-{id}.html"), html.into_bytes()),
        (format!("issue-{id}-recipients.csv"), recipients),
    ];
    for (name, bytes) in files {
        let path = out.join(name);
        // The list of recipients is subscriber data: private, like outbox/.
        crate::files::write_private(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}", crate::files::display(&path).display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `email,name,state,sent_at,reply`, one row per recipient (RFC 4180 quoting by `csv`).
fn recipients_csv(store: &Store, id: i64) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["email", "name", "state", "sent_at", "reply"])?;
    for r in store.issue_recipients(id)? {
        w.write_record([
            r.email.as_str(),
            r.name.as_str(),
            r.state.as_str(),
            r.sent_at.as_deref().unwrap_or(""),
            r.reply.as_deref().unwrap_or(""),
        ])?;
    }
    Ok(w.into_inner()?)
}
