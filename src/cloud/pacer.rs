//! Client-side pacing at EC2's published request rates, per region and per action.
//!
//! EC2 meters requests with token buckets per account, region and action (see the EC2 API
//! throttling documentation): a burst capacity that refills at a steady rate. Sending faster
//! only earns `RequestLimitExceeded` and backoff. The pacer keeps a bucket of the same shape
//! for every (region, action) and makes each request wait for its token, so a large apply
//! runs at the ceiling instead of bouncing off it. Waiting is a reservation: callers queue
//! in order without polling.
//!
//! The published rates are defaults; an account's real ones may differ, and other clients in
//! the account draw from the same buckets. So the pacer also listens: a throttling answer
//! halves that bucket's rate (at most once a second) and drains its burst; every success
//! then adds back a little, up to the ceiling (additive increase, multiplicative decrease,
//! as TCP does). `--pace-scale` raises the ceiling for accounts with raised limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::resource::Scope;

/// How much of EC2's published bucket labctl uses: sending at exactly the refill rate leaves
/// no room for network jitter. A small margin keeps throttling rare; when it happens anyway,
/// the pacer slows down (see above) and the request is retried.
const BURST_SHARE: f64 = 0.98;
const RATE_SHARE: f64 = 0.985;
/// The lowest rate a throttled bucket falls to, in requests per second.
const FLOOR_RATE: f64 = 0.2;
/// What each success adds back, as a share of the ceiling.
const RECOVERY_SHARE: f64 = 0.02;

/// EC2's bucket for an action: (burst capacity, refill per second), as published.
pub(crate) fn ec2_limits(action: &str) -> (f64, f64) {
    match action {
        "DescribeKeyPairs" => (100.0, 20.0),
        "CreateTags" | "DeleteTags" => (100.0, 10.0),
        // Parameter Store's standard throughput: reads and writes of an account and region
        // share one quota (about 40 a second).
        PARAMETER_STORE => (40.0, 40.0),
        // CreateKeyPair, ImportKeyPair, DeleteKeyPair, and anything else mutating.
        _ => (50.0, 5.0),
    }
}

/// The bucket every SSM request of a scope shares.
const PARAMETER_STORE: &str = "ParameterStore";

/// The bucket an operation draws from: its own for EC2's actions, one for all of SSM's.
fn bucket_of(action: &'static str) -> &'static str {
    if super::ssm::OPERATIONS.contains(&action) {
        PARAMETER_STORE
    } else {
        action
    }
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    /// The rate now, lowered by throttling and recovering towards `ceiling`.
    rate: f64,
    ceiling: f64,
    tokens: f64,
    updated: Instant,
    /// When the rate was last halved (one decrease per second at most: the requests already
    /// in flight were sent at the old rate and will be throttled too).
    decreased: Option<Instant>,
}

/// Token buckets per (scope, action): EC2 meters each account and region apart. `None`
/// paces nothing.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Option<Mutex<HashMap<(Scope, &'static str), Bucket>>>,
    /// The account's limits as a multiple of EC2's published ones.
    scale: f64,
}

impl Pacer {
    /// Pace at `scale` times EC2's published rates and bursts.
    pub(crate) fn scaled(scale: f64) -> Self {
        Pacer {
            buckets: Some(Mutex::new(HashMap::new())),
            scale,
        }
    }

    /// No pacing (a local server, or a caller that paces itself).
    pub(crate) fn none() -> Self {
        Pacer {
            buckets: None,
            scale: 1.0,
        }
    }

    /// Run `f` on the bucket of (scope, action), made on first use.
    fn with_bucket<T>(
        &self,
        scope: &Scope,
        action: &'static str,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> T,
    ) -> Option<T> {
        let buckets = self.buckets.as_ref()?;
        let mut buckets = buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scale = self.scale;
        let action = bucket_of(action);
        let bucket = buckets.entry((scope.clone(), action)).or_insert_with(|| {
            let (capacity, rate) = ec2_limits(action);
            let capacity = (capacity * scale * BURST_SHARE).floor().max(1.0);
            let rate = rate * scale * RATE_SHARE;
            Bucket {
                capacity,
                rate,
                ceiling: rate,
                tokens: capacity,
                updated: now,
                decreased: None,
            }
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.capacity);
        bucket.updated = now;
        Some(f(bucket))
    }

    /// EC2 throttled a request of `action` in `scope`: halve that bucket's rate (once a
    /// second at most) and give up its burst.
    pub(crate) fn throttled(&self, scope: &Scope, action: &'static str) {
        let now = Instant::now();
        self.with_bucket(scope, action, now, |bucket| {
            let recent = bucket
                .decreased
                .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
            if !recent {
                bucket.rate = (bucket.rate / 2.0).max(FLOOR_RATE.min(bucket.ceiling));
                bucket.decreased = Some(now);
                tracing::debug!(
                    scope = %scope,
                    action,
                    rate = bucket.rate,
                    "throttled: slowing down"
                );
            }
            bucket.tokens = bucket.tokens.min(0.0);
        });
    }

    /// A request of `action` in `scope` succeeded: recover a little of the rate.
    pub(crate) fn succeeded(&self, scope: &Scope, action: &'static str) {
        self.with_bucket(scope, action, Instant::now(), |bucket| {
            bucket.rate = (bucket.rate + bucket.ceiling * RECOVERY_SHARE).min(bucket.ceiling);
        });
    }

    /// How long the next request of `action` in `scope` must wait; reserves its token.
    fn reserve(&self, scope: &Scope, action: &'static str, now: Instant) -> Duration {
        self.with_bucket(scope, action, now, |bucket| {
            bucket.tokens -= 1.0;
            if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / bucket.rate)
            }
        })
        .unwrap_or(Duration::ZERO)
    }

    /// Wait for a token for one request.
    pub(crate) async fn wait(&self, scope: &Scope, action: &'static str) {
        let delay = self.reserve(scope, action, Instant::now());
        if !delay.is_zero() {
            tracing::debug!(scope = %scope, action, delay_ms = delay.as_millis(), "pacing");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    fn scope(region: &str) -> crate::resource::Scope {
        crate::resource::Scope::caller(crate::desired::Region::parse(region).unwrap())
    }

    use super::{BURST_SHARE, Pacer, RATE_SHARE};

    #[test]
    fn a_burst_then_the_refill_rate() {
        let pacer = Pacer::scaled(1.0);
        let start = Instant::now();
        // 49 at once (98% of EC2's 50), then one every 203 ms (98.5% of EC2's 5 per second).
        let burst: usize = 49;
        assert!((50.0 * BURST_SHARE - 49.0).abs() < 1.0 && 50.0 * BURST_SHARE >= 49.0);
        let delays: Vec<Duration> = (0..burst + 3)
            .map(|_| pacer.reserve(&scope("us-east-1"), "CreateKeyPair", start))
            .collect();
        assert!(delays[..burst].iter().all(Duration::is_zero));
        let step = 1.0 / (5.0 * RATE_SHARE);
        assert!(
            (delays[burst].as_secs_f64() - step).abs() < 1e-6,
            "{:?}",
            delays[burst]
        );
        assert!(
            (delays[burst + 2].as_secs_f64() - 3.0 * step).abs() < 1e-6,
            "{:?}",
            delays[burst + 2]
        );
        // Buckets are per region and per action.
        assert!(
            pacer
                .reserve(&scope("eu-west-1"), "CreateKeyPair", start)
                .is_zero()
        );
        assert!(
            pacer
                .reserve(&scope("us-east-1"), "DescribeKeyPairs", start)
                .is_zero()
        );
        // Time refills the bucket.
        let later = start + Duration::from_mins(1);
        assert!(
            pacer
                .reserve(&scope("us-east-1"), "CreateKeyPair", later)
                .is_zero()
        );
    }

    #[test]
    fn throttling_halves_the_rate_once_a_second_and_successes_bring_it_back() {
        let pacer = Pacer::scaled(1.0);
        let rate = |p: &Pacer| {
            p.with_bucket(&scope("us-east-1"), "CreateKeyPair", Instant::now(), |b| {
                b.rate
            })
            .unwrap()
        };
        let ceiling = 5.0 * RATE_SHARE;
        assert!((rate(&pacer) - ceiling).abs() < 1e-9);
        // A burst of throttling answers (requests that were in flight together): one halving.
        for _ in 0..16 {
            pacer.throttled(&scope("us-east-1"), "CreateKeyPair");
        }
        assert!((rate(&pacer) - ceiling / 2.0).abs() < 1e-9);
        // The burst is gone: the next request waits for a token at the lowered rate.
        let wait = pacer.reserve(&scope("us-east-1"), "CreateKeyPair", Instant::now());
        assert!(wait > Duration::from_millis(300), "{wait:?}");
        // Successes recover the rate, never past the ceiling.
        for _ in 0..200 {
            pacer.succeeded(&scope("us-east-1"), "CreateKeyPair");
        }
        assert!((rate(&pacer) - ceiling).abs() < 1e-9);
        // Another region's bucket never slowed down.
        assert!(
            pacer
                .reserve(&scope("eu-west-1"), "CreateKeyPair", Instant::now())
                .is_zero()
        );
    }

    #[test]
    fn a_raised_limit_scales_burst_and_rate() {
        let pacer = Pacer::scaled(2.0);
        let start = Instant::now();
        let delays: Vec<Duration> = (0..99)
            .map(|_| pacer.reserve(&scope("us-east-1"), "CreateKeyPair", start))
            .collect();
        assert!(delays[..98].iter().all(Duration::is_zero));
        assert!((delays[98].as_secs_f64() - 1.0 / (10.0 * RATE_SHARE)).abs() < 1e-6);
    }

    #[test]
    fn none_never_waits() {
        let pacer = Pacer::none();
        let start = Instant::now();
        assert!((0..1000).all(|_| {
            pacer
                .reserve(&scope("us-east-1"), "CreateKeyPair", start)
                .is_zero()
        }));
    }
}
