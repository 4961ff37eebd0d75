//! `tayori subscribers export|list|add|remove`: every subscriber's record (lists, sign-ups,
//! suppressions) as CSV with the consent fields, and changes by hand for requests by phone.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use crate::store::Store;
use crate::subscribers;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Every subscriber and suppressed address as CSV on stdout, with the consent fields.
    Export,
    /// Every subscriber, one line each: address, list, state.
    List,
    /// Subscribe an address on the office's word (a request by phone, say).
    Add {
        address: String,
        #[arg(long, default_value = "")]
        name: String,
        /// The list it joins.
        #[arg(long, default_value = "office")]
        list: String,
        /// How and when consent was given, in your words (kept as the consent record).
        #[arg(long)]
        consent: String,
    },
    /// Stop all mail to an address (it is suppressed, whatever list it is on).
    Remove { address: String },
}

/// One subscriber's record, however they came.
#[derive(Debug, Default, Clone)]
struct Record {
    email: String,
    name: String,
    list: String,
    state: String,
    method: String,
    consent_at: String,
    consent_text: String,
    consent_note: String,
    requested_at: String,
    confirmed_at: String,
    unsubscribed_at: String,
    client_ip: String,
}

const COLUMNS: &str = "email,name,list,state,consent_method,consent_at,consent_text,consent_note,requested_at,confirmed_at,unsubscribed_at,last_sent,client_ip";

pub fn run(root: &Path, action: Action) -> anyhow::Result<ExitCode> {
    super::quiet_on_broken_pipe();
    match action {
        Action::Add {
            address,
            name,
            list,
            consent,
        } => {
            if !subscribers::valid_address(&address) {
                eprintln!("{address}: not a valid email address");
                return Ok(ExitCode::FAILURE);
            }
            Store::open(root)?.add_signup(&address, &name, &list, &consent, Utc::now())?;
            println!("{address}: subscribed (list {list})");
        }
        Action::Remove { address } => {
            if !subscribers::valid_address(&address) {
                eprintln!("{address}: not a valid email address");
                return Ok(ExitCode::FAILURE);
            }
            let store = Store::open(root)?;
            let now = Utc::now();
            store.unsubscribe_signup(&address, now)?;
            store.suppress(&address, "removed by the office", now)?;
            println!("{address}: removed; no more mail goes to it");
        }
        Action::List => {
            for r in records(root, Store::open_read_only(root)?.as_ref())?.values() {
                println!("{}  {}  {}", r.email, r.list, r.state);
            }
        }
        Action::Export => export(root)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists, sign-ups and suppressions merged by address; a suppression decides the state.
fn records(root: &Path, store: Option<&Store>) -> anyhow::Result<BTreeMap<String, Record>> {
    let mut all: BTreeMap<String, Record> = BTreeMap::new();
    subscribers::each(&root.join("subscribers"), |s| {
        all.entry(subscribers::key(s.email))
            .or_insert_with(|| Record {
                email: s.email.to_string(),
                name: s.name.to_string(),
                list: s.list.to_string(),
                state: "subscribed".into(),
                method: s.consent_method.unwrap_or("list file").to_string(),
                consent_at: s.consent_at.or(s.subscribed_at).unwrap_or("").to_string(),
                consent_note: s.consent_note.or(s.source).unwrap_or("").to_string(),
                ..Record::default()
            });
    });
    let Some(store) = store else {
        return Ok(all);
    };
    for s in store.signups()? {
        let r = all.entry(s.address.clone()).or_default();
        *r = Record {
            email: s.email,
            name: s.name,
            list: s.list,
            state: s.state,
            method: s.method,
            consent_at: s.confirmed_at.clone().unwrap_or_default(),
            consent_text: s.consent_text.unwrap_or_default(),
            consent_note: s.consent_note.unwrap_or_default(),
            requested_at: s.requested_at,
            confirmed_at: s.confirmed_at.unwrap_or_default(),
            unsubscribed_at: s.unsubscribed_at.unwrap_or_default(),
            client_ip: s.client_ip.unwrap_or_default(),
        };
    }
    for (address, reason, at) in store.suppressions()? {
        let r = all.entry(address.clone()).or_insert_with(|| Record {
            email: address.clone(),
            ..Record::default()
        });
        r.state = if reason.contains("complain") {
            "complained"
        } else if reason.contains("bounce") {
            "bounced"
        } else {
            "unsubscribed"
        }
        .into();
        if r.unsubscribed_at.is_empty() {
            r.unsubscribed_at = at;
        }
    }
    Ok(all)
}

fn export(root: &Path) -> anyhow::Result<()> {
    let store = Store::open_read_only(root)?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(COLUMNS.split(','))?;
    for (address, r) in records(root, store.as_ref())? {
        let last_sent = match &store {
            Some(s) => s.last_sent(&address)?.unwrap_or_default(),
            None => String::new(),
        };
        out.write_record([
            &r.email,
            &r.name,
            &r.list,
            &r.state,
            &r.method,
            &r.consent_at,
            &r.consent_text,
            &r.consent_note,
            &r.requested_at,
            &r.confirmed_at,
            &r.unsubscribed_at,
            &last_sent,
            &r.client_ip,
        ])?;
    }
    out.flush()?;
    Ok(())
}
