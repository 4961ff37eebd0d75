//! Exponential backoff with random jitter, for SMTP retries and the webhook outbox alike: the
//! wait doubles from `first` up to `max`, plus up to `jitter` of itself at random, so that the
//! retries of many messages or events do not all arrive at once.

use std::time::Duration;

/// The wait after `doublings` doublings of `first` (capped at `max`), with jitter.
pub fn exponential(first: Duration, max: Duration, doublings: u32, jitter: f64) -> Duration {
    let exp = first.saturating_mul(1 << doublings.min(16)).min(max);
    exp + exp.mul_f64(fastrand::f64() * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_doubling_and_is_capped_with_jitter_on_top() {
        let (s, m) = (Duration::from_secs(1), Duration::from_secs(10));
        let w = exponential(s, m, 0, 0.5);
        assert!(w >= s && w <= s.mul_f64(1.5));
        assert!(exponential(s, m, 3, 0.0) == Duration::from_secs(8));
        assert!(exponential(s, m, 40, 0.2) <= m.mul_f64(1.2));
    }
}
