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

/// How much of EC2's published rate labctl uses: sending at exactly the refill rate leaves no
/// room for network jitter, and one request that arrives early is throttled, retried and
/// costs a token again. 90% of the burst and 92% of the rate keep a margin.
const BURST_SHARE: f64 = 0.90;
const RATE_SHARE: f64 = 0.92;

/// EC2's bucket for an action: (burst capacity, refill per second), as published.
pub(crate) fn ec2_limits(action: &str) -> (f64, f64) {
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
pub(crate) struct Pacer {
    buckets: Option<Mutex<HashMap<(String, &'static str), Bucket>>>,
}

impl Pacer {
    /// Pace at EC2's published rates.
    pub(crate) fn ec2() -> Self {
        Pacer {
            buckets: Some(Mutex::new(HashMap::new())),
        }
    }

    /// No pacing (a local server, or a caller that paces itself).
    pub(crate) fn none() -> Self {
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
                let capacity = (capacity * BURST_SHARE).floor();
                Bucket {
                    capacity,
                    rate: rate * RATE_SHARE,
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
    pub(crate) async fn wait(&self, region: &str, action: &'static str) {
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
        // 45 at once (90% of EC2's 50), then one every 217 ms (92% of EC2's 5 per second).
        let delays: Vec<Duration> = (0..48)
            .map(|_| pacer.reserve("us-east-1", "CreateKeyPair", start))
            .collect();
        assert!(delays[..45].iter().all(Duration::is_zero));
        let step = 1.0 / (5.0 * 0.92);
        assert!(
            (delays[45].as_secs_f64() - step).abs() < 1e-6,
            "{:?}",
            delays[45]
        );
        assert!(
            (delays[47].as_secs_f64() - 3.0 * step).abs() < 1e-6,
            "{:?}",
            delays[47]
        );
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
