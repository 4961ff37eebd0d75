//! The sign-up's rule on confirmations: whether a request from the form queues one. The store
//! records requests and answers what it knows of an address ([`Store::signup_standing`]);
//! this decides.

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::{SignupRequest, SignupStanding, Store, StoreError};

/// At most one confirmation email per address in this time.
pub const CONFIRMATION_PAUSE: TimeDelta = TimeDelta::hours(1);

/// The longest pause between confirmations to one address nobody answers.
const LONGEST_PAUSE: TimeDelta = TimeDelta::days(7);

/// Records a request and returns whether a confirmation was queued for it: not for an address
/// already subscribed, not while an earlier one is still queued (unsent), and not within the
/// pause after one that was *sent*. The caller holds the store, so the answer and the record
/// are one step.
pub fn request(
    store: &Store,
    req: &SignupRequest<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let address = crate::subscribers::key(req.email);
    if let Some(standing) = store.signup_standing(&address)? {
        if !may_confirm(&standing, now) {
            return Ok(false);
        }
    }
    store.record_signup_request(req, now)?;
    Ok(true)
}

/// Whether a confirmation may go to an address the store knows.
fn may_confirm(s: &SignupStanding, now: DateTime<Utc>) -> bool {
    if s.subscribed || s.confirmation_queued {
        return false;
    }
    let Some(sent) = s.last_confirmation_sent else {
        return true;
    };
    // Each confirmation nobody answered doubles the pause, up to a week: a stranger posting
    // someone's address to the form gets them a handful of mails, not one an hour.
    let doublings = s.unanswered.clamp(1, 11) as u32 - 1;
    let pause = (CONFIRMATION_PAUSE * 2i32.pow(doublings)).min(LONGEST_PAUSE);
    now.signed_duration_since(sent) >= pause
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConfirmationOutcome;

    fn ask(store: &Store, email: &str, now: DateTime<Utc>) -> bool {
        let req = SignupRequest {
            email,
            name: "",
            list: "web",
            consent_text: "同意",
            client_ip: None,
        };
        request(store, &req, now).unwrap()
    }

    #[test]
    fn each_confirmation_nobody_answers_doubles_the_pause_for_that_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut now = Utc::now();
        let mut gaps = Vec::new();
        for _ in 0..4 {
            // Asked again every 10 minutes until a confirmation can go; then it is sent.
            let mut waited = TimeDelta::zero();
            while !ask(&store, "target@example.jp", now) {
                now += TimeDelta::minutes(10);
                waited += TimeDelta::minutes(10);
            }
            gaps.push(waited.num_minutes());
            let c = store
                .claim_confirmation(
                    now,
                    now + TimeDelta::minutes(3),
                    "h",
                    now + TimeDelta::hours(72),
                )
                .unwrap()
                .expect("due");
            store
                .confirmation_done(&c.address, &ConfirmationOutcome::Sent, now)
                .unwrap();
        }
        assert_eq!(
            gaps,
            [0, 60, 120, 240],
            "1 h, then 2 h, then 4 h between mails"
        );
    }

    #[test]
    fn a_deferred_confirmation_is_claimed_again_once_due_and_only_a_sent_one_counts_for_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let lease = now + TimeDelta::minutes(3);
        let expires = now + TimeDelta::hours(72);
        assert!(ask(&store, "a@example.jp", now));
        let c = store
            .claim_confirmation(now, lease, "h1", expires)
            .unwrap()
            .expect("due at once");
        assert_eq!((c.email.as_str(), c.attempts), ("a@example.jp", 0));
        assert_eq!(
            store.claim_confirmation(now, lease, "h2", expires).unwrap(),
            None,
            "a claimed confirmation is not claimed twice"
        );
        let retry_at = now + TimeDelta::seconds(2);
        let deferred = ConfirmationOutcome::Deferred {
            error: "connection refused".into(),
            retry_at,
        };
        store
            .confirmation_done("a@example.jp", &deferred, now)
            .unwrap();
        assert!(!ask(&store, "a@example.jp", now), "still queued: no second");
        assert_eq!(store.next_confirmation_due().unwrap(), Some(retry_at));
        assert_eq!(
            store.claim_confirmation(now, lease, "h3", expires).unwrap(),
            None
        );
        let later = retry_at + TimeDelta::seconds(1);
        let c = store
            .claim_confirmation(later, lease, "h4", expires)
            .unwrap()
            .expect("due again");
        assert_eq!(c.attempts, 1);
        store
            .confirmation_done("a@example.jp", &ConfirmationOutcome::Sent, later)
            .unwrap();
        assert_eq!(store.next_confirmation_due().unwrap(), None);
        assert!(!ask(&store, "a@example.jp", later), "sent within the hour");
        let next_hour = later + TimeDelta::minutes(61);
        assert!(ask(&store, "a@example.jp", next_hour));
    }
}
