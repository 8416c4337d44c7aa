//! Client-side pacing at EC2's published request rates, per region and per action.
//!
//! EC2 meters requests with token buckets per account, region and action (see the EC2 API
//! throttling documentation): a burst capacity that refills at a steady rate. Sending faster
//! only earns `RequestLimitExceeded` and backoff. The pacer keeps a bucket of the same shape
//! for every (region, action) and makes each request wait for its token, so a large apply
//! runs at the ceiling instead of bouncing off it. Waiting is a reservation: callers queue
//! in order without polling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// EC2's bucket for an action: (burst capacity, refill per second).
pub fn ec2_limits(action: &str) -> (f64, f64) {
    match action {
        "DescribeKeyPairs" => (100.0, 20.0),
        "CreateTags" | "DeleteTags" => (100.0, 10.0),
        // CreateKeyPair, ImportKeyPair, DeleteKeyPair, and anything else mutating.
        _ => (50.0, 5.0),
    }
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    updated: Instant,
}

/// Token buckets per (region, action); `None` paces nothing.
#[derive(Debug, Default)]
pub struct Pacer {
    buckets: Option<Mutex<HashMap<(String, &'static str), Bucket>>>,
}

impl Pacer {
    /// Pace at EC2's published rates.
    pub fn ec2() -> Self {
        Pacer {
            buckets: Some(Mutex::new(HashMap::new())),
        }
    }

    /// No pacing (a local server, or a caller that paces itself).
    pub fn none() -> Self {
        Pacer { buckets: None }
    }

    /// How long the next request of `action` in `region` must wait; reserves its token.
    fn reserve(&self, region: &str, action: &'static str, now: Instant) -> Duration {
        let Some(buckets) = &self.buckets else {
            return Duration::ZERO;
        };
        let mut buckets = buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets
            .entry((region.to_owned(), action))
            .or_insert_with(|| {
                let (capacity, rate) = ec2_limits(action);
                Bucket {
                    capacity,
                    rate,
                    tokens: capacity,
                    updated: now,
                }
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.capacity);
        bucket.updated = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / bucket.rate)
        }
    }

    /// Wait for a token for one request.
    pub async fn wait(&self, region: &str, action: &'static str) {
        let delay = self.reserve(region, action, Instant::now());
        if !delay.is_zero() {
            tracing::debug!(region, action, delay_ms = delay.as_millis(), "pacing");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Pacer;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let pacer = Pacer::ec2();
        let start = Instant::now();
        // 50 at once, then one every 200 ms.
        let delays: Vec<Duration> = (0..53)
            .map(|_| pacer.reserve("us-east-1", "CreateKeyPair", start))
            .collect();
        assert!(delays[..50].iter().all(Duration::is_zero));
        assert_eq!(delays[50], Duration::from_millis(200));
        assert_eq!(delays[52], Duration::from_millis(600));
        // Buckets are per region and per action.
        assert!(pacer.reserve("eu-west-1", "CreateKeyPair", start).is_zero());
        assert!(
            pacer
                .reserve("us-east-1", "DescribeKeyPairs", start)
                .is_zero()
        );
        // Time refills the bucket.
        let later = start + Duration::from_mins(1);
        assert!(pacer.reserve("us-east-1", "CreateKeyPair", later).is_zero());
    }

    #[test]
    fn none_never_waits() {
        let pacer = Pacer::none();
        let start = Instant::now();
        assert!((0..1000).all(|_| pacer.reserve("us-east-1", "CreateKeyPair", start).is_zero()));
    }
}
