//! Request throttling per principal and per action, as the clouds do it: each (action, caller)
//! pair has its own token bucket, filled at the action's rate up to its burst. The defaults are
//! the clouds' published per-API rates; each dialect passes its own with the action name (the
//! table lives beside the dialect's router), and `serve --throttle-rate ACTION=RATE[:BURST]`
//! overrides them. The buckets live in this process: with several nodes the limit is per node.
//!
//! The hot path takes no global lock: the map is split into shards behind their own `RwLock`
//! (a known caller only takes a shard's read lock), and a bucket is one atomic word updated by
//! compare-and-swap (GCRA, the "virtual scheduling" form of a token bucket: the word holds the
//! theoretical arrival time of the next call, so refill needs no second field and no timer).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use crate::authz::{Identity, Principal};
use crate::clock::Millis;

/// A sustained rate and how many calls may arrive at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained, with one second's worth of calls as the burst (at least one):
    /// what a cloud's "N calls per second" reads as.
    pub fn per_second(per_second: f64) -> Rate {
        let burst = per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
        Rate { per_second, burst }
    }

    /// `count` calls per hour, all of which may come at once (Azure's hourly limits).
    pub fn per_hour(count: u32) -> Rate {
        Rate {
            per_second: f64::from(count) / 3600.0,
            burst: count.max(1),
        }
    }

    /// The value of a `--throttle-rate` override: `RATE` or `RATE:BURST` (`RATE` calls per
    /// second, may be fractional), or `off` for no limit on the matching actions.
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (rate, burst) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let per_second: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{rate:?} is not a rate (calls per second, e.g. 10 or 0.5)"))?;
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "rate {rate:?} must be a positive number of calls per second"
            ));
        }
        let mut r = Rate::per_second(per_second);
        if let Some(b) = burst {
            r.burst = b
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    format!("burst {b:?} must be a whole number of calls, at least 1")
                })?;
        }
        Ok(Some(r))
    }
}

/// One `--throttle-rate ACTION=RATE[:BURST]`: `ACTION` is a throttle action name
/// (`iot:DescribeCertificate`, `cas:DescribePackageState`, `onsmqtt:GetRegisterCode`,
/// `billing:read`), a prefix ending in `*` (`iot:*`), or `*` for every action.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub pattern: String,
    /// `None`: no limit.
    pub rate: Option<Rate>,
}

impl Override {
    pub fn parse(s: &str) -> Result<Override, String> {
        let Some((pattern, rate)) = s.split_once('=') else {
            return Err(format!(
                "--throttle-rate {s:?}: expected ACTION=RATE[:BURST] (e.g. iot:DescribeCertificate=10)"
            ));
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(format!("--throttle-rate {s:?}: the action name is empty"));
        }
        let rate = Rate::parse(rate).map_err(|e| format!("--throttle-rate {s:?}: {e}"))?;
        Ok(Override {
            pattern: pattern.to_string(),
            rate,
        })
    }

    fn matches(&self, action: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => self.pattern == action,
        }
    }
}

/// Why a call was refused, and when the caller's bucket has a token again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_ms: u64,
}

/// One bucket: the theoretical arrival time of the next call, in microseconds, and the
/// rate it was made with.
#[derive(Debug)]
struct Bucket {
    tat_us: AtomicI64,
    /// Microseconds one call costs (1 / rate).
    interval_us: i64,
    /// How far ahead of now the arrival time may run: the burst's worth of calls.
    tolerance_us: i64,
}

impl Bucket {
    fn new(rate: Rate) -> Bucket {
        let interval_us = (1_000_000.0 / rate.per_second).clamp(1.0, 1e15) as i64;
        Bucket {
            tat_us: AtomicI64::new(i64::MIN),
            interval_us,
            tolerance_us: interval_us.saturating_mul(i64::from(rate.burst)),
        }
    }

    /// Takes one token at `now_us`, or says how long until one is there.
    fn take(&self, now_us: i64) -> Result<(), Throttled> {
        let mut tat = self.tat_us.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_us).saturating_add(self.interval_us);
            let ahead = next.saturating_sub(now_us);
            if ahead > self.tolerance_us {
                let wait_us = ahead - self.tolerance_us;
                let retry_after_ms = u64::try_from(wait_us.saturating_add(999) / 1000).unwrap_or(1);
                return Err(Throttled {
                    retry_after_ms: retry_after_ms.max(1),
                });
            }
            match self
                .tat_us
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Full again at `now_us`: forgetting it changes nothing for its caller.
    fn is_full(&self, now_us: i64) -> bool {
        self.tat_us.load(Ordering::Relaxed) <= now_us
    }
}

const SHARDS: usize = 64;
/// A shard holding more buckets than this drops the full ones (a caller that stopped calling
/// needs no memory: a new bucket starts full), so dev-mode callers inventing access key ids
/// cannot grow the map without bound.
const SHARD_SOFT_CAP: usize = 4096;

type Shard = RwLock<HashMap<String, Bucket>>;

/// Every bucket of this node.
pub struct Throttle {
    enabled: bool,
    /// Most specific first: an exact name, then longer prefixes, then `*`.
    overrides: Vec<Override>,
    shards: Vec<Shard>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("enabled", &self.enabled)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// No limits at all (`--throttle off`, and every core made outside `serve`).
    pub fn disabled() -> Throttle {
        Throttle {
            enabled: false,
            overrides: Vec::new(),
            shards: Vec::new(),
        }
    }

    /// The clouds' defaults, with `overrides` on top.
    pub fn new(mut overrides: Vec<Override>) -> Throttle {
        // A later flag for the same pattern wins, as later flags do.
        let mut seen = std::collections::HashSet::new();
        overrides.reverse();
        overrides.retain(|o| seen.insert(o.pattern.clone()));
        overrides.sort_by_key(|o| {
            let wildcard = o.pattern.ends_with('*');
            (wildcard, std::cmp::Reverse(o.pattern.len()))
        });
        Throttle {
            enabled: true,
            overrides,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The rate in force for `action`: the most specific override, else the cloud's default.
    /// `None`: not limited.
    pub fn rate_for(&self, action: &str, default: Rate) -> Option<Rate> {
        if !self.enabled {
            return None;
        }
        match self.overrides.iter().find(|o| o.matches(action)) {
            Some(o) => o.rate,
            None => Some(default),
        }
    }

    /// Takes a token from `caller`'s bucket for `action` (see [`caller_key`]).
    pub fn check(
        &self,
        caller: &str,
        action: &str,
        default: Rate,
        now: Millis,
    ) -> Result<(), Throttled> {
        if !self.enabled {
            return Ok(());
        }
        let mut key = String::with_capacity(action.len() + caller.len() + 1);
        key.push_str(action);
        key.push('\u{0}');
        key.push_str(caller);
        let now_us = now.saturating_mul(1000);
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let Some(shard) = self.shards.get(h.finish() as usize % SHARDS) else {
            return Ok(());
        };
        // A poisoned lock only means another request panicked mid-update of the map; the
        // buckets in it are atomics and stay consistent, so keep using it.
        {
            let map = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = map.get(&key) {
                return b.take(now_us);
            }
        }
        let Some(rate) = self.rate_for(action, default) else {
            return Ok(());
        };
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SHARD_SOFT_CAP {
            map.retain(|_, b| !b.is_full(now_us));
        }
        map.entry(key)
            .or_insert_with(|| Bucket::new(rate))
            .take(now_us)
    }
}

/// Who a bucket belongs to: the account and the user inside it (the account's root user, or
/// in dev mode the access key, else the account). ApsaraMQ's "per user" and AWS's and Azure's
/// per-principal limits all read so.
pub fn caller_key(principal: &Principal) -> String {
    match &principal.identity {
        Identity::User { name, .. } => caller_of(&principal.account, Some(name), false, None),
        Identity::Root => caller_of(&principal.account, None, false, None),
        Identity::Dev => caller_of(
            &principal.account,
            None,
            true,
            principal.access_key_id.as_deref(),
        ),
    }
}

/// [`caller_key`] for a caller whose key is known before its principal is built (the Alibaba
/// front end throttles before it spends the request's nonce).
pub fn caller_of(account: &str, user: Option<&str>, dev: bool, access_key: Option<&str>) -> String {
    match (dev, user, access_key) {
        (false, Some(u), _) => format!("{account}/user/{u}"),
        (false, None, _) => format!("{account}/root"),
        (true, _, Some(k)) => format!("{account}/key/{k}"),
        (true, _, None) => format!("{account}/dev"),
    }
}

/// Called once for every refused call, with the dialect (`aws-iot`, `aliyun-cas`,
/// `aliyun-onsmqtt`, `azure-billing`) and the throttle action name: the Prometheus counter
/// `certplane_throttled_calls_total`.
pub fn on_throttled(dialect: &str, action: &str) {
    crate::metrics::throttled(dialect, action);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    const T0: Millis = 1_800_000_000_000;

    fn burst_count(t: &Throttle, caller: &str, action: &str, rate: Rate, now: Millis) -> usize {
        (0..10_000)
            .take_while(|_| t.check(caller, action, rate, now).is_ok())
            .count()
    }

    #[test]
    fn a_fresh_bucket_allows_its_burst_then_refuses() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(5.0);
        assert_eq!(burst_count(&t, "a/root", "iot:X", rate, clock.now()), 5);
        let refused = t.check("a/root", "iot:X", rate, clock.now());
        // One token comes back every 200 ms.
        assert_eq!(
            refused,
            Err(Throttled {
                retry_after_ms: 200
            })
        );
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(10.0);
        assert_eq!(burst_count(&t, "c", "a", rate, clock.now()), 10);
        clock.set(T0 + 99);
        assert!(t.check("c", "a", rate, clock.now()).is_err());
        clock.set(T0 + 100);
        assert!(t.check("c", "a", rate, clock.now()).is_ok());
        assert!(t.check("c", "a", rate, clock.now()).is_err());
        // A long pause refills to the burst, never beyond it.
        clock.set(T0 + 60_000);
        assert_eq!(burst_count(&t, "c", "a", rate, clock.now()), 10);
    }

    #[test]
    fn sustained_calls_at_the_rate_all_pass() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(500.0);
        for i in 0..5_000 {
            clock.set(T0 + i * 2);
            assert!(
                t.check("u", "onsmqtt:X", rate, clock.now()).is_ok(),
                "call {i}"
            );
        }
    }

    #[test]
    fn callers_and_actions_have_their_own_buckets() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(2.0);
        assert_eq!(
            burst_count(&t, "a/user/alice", "iot:X", rate, clock.now()),
            2
        );
        assert_eq!(burst_count(&t, "a/user/bob", "iot:X", rate, clock.now()), 2);
        assert_eq!(
            burst_count(&t, "a/user/alice", "iot:Y", rate, clock.now()),
            2
        );
        assert_eq!(
            burst_count(&t, "b/user/alice", "iot:X", rate, clock.now()),
            2
        );
    }

    #[test]
    fn fractional_rates_and_hourly_limits() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let half = Rate::per_second(0.5);
        assert_eq!(half.burst, 1);
        assert!(t.check("c", "a", half, clock.now()).is_ok());
        assert_eq!(
            t.check("c", "a", half, clock.now()),
            Err(Throttled {
                retry_after_ms: 2000
            })
        );
        let hourly = Rate::per_hour(1200);
        assert_eq!(
            burst_count(&t, "c", "billing:write", hourly, clock.now()),
            1200
        );
        clock.set(T0 + 3_000);
        assert_eq!(
            burst_count(&t, "c", "billing:write", hourly, clock.now()),
            1
        );
    }

    #[test]
    fn overrides_most_specific_first_and_off() {
        let ov = |s: &str| Override::parse(s).map_err(|e| e.to_string());
        let t = Throttle::new(vec![
            ov("*=100").unwrap_or_else(|e| panic!("{e}")),
            ov("iot:*=3").unwrap_or_else(|e| panic!("{e}")),
            ov("iot:DescribeCertificate=1:4").unwrap_or_else(|e| panic!("{e}")),
            ov("cas:*=off").unwrap_or_else(|e| panic!("{e}")),
            ov("iot:*=2").unwrap_or_else(|e| panic!("{e}")),
        ]);
        let d = Rate::per_second(10.0);
        assert_eq!(
            t.rate_for("iot:DescribeCertificate", d),
            Some(Rate {
                per_second: 1.0,
                burst: 4
            })
        );
        // The later of two flags for one pattern wins.
        assert_eq!(
            t.rate_for("iot:ListCertificates", d),
            Some(Rate::per_second(2.0))
        );
        assert_eq!(t.rate_for("cas:DescribePackageState", d), None);
        assert_eq!(t.rate_for("billing:read", d), Some(Rate::per_second(100.0)));
        assert_eq!(Throttle::disabled().rate_for("iot:X", d), None);
        let now = T0;
        assert_eq!(burst_count(&t, "c", "cas:X", d, now), 10_000);
        assert_eq!(burst_count(&t, "c", "iot:DescribeCertificate", d, now), 4);
        assert_eq!(
            burst_count(&Throttle::disabled(), "c", "iot:X", d, now),
            10_000
        );
    }

    #[test]
    fn malformed_overrides_are_refused_with_the_reason() {
        for bad in [
            "iot:X",
            "=5",
            "iot:X=0",
            "iot:X=-1",
            "iot:X=fast",
            "iot:X=5:0",
            "iot:X=NaN",
        ] {
            assert!(Override::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Override::parse("iot:X=0.5").map(|o| o.rate),
            Ok(Some(Rate {
                per_second: 0.5,
                burst: 1
            }))
        );
    }

    #[test]
    fn full_buckets_are_forgotten_when_a_shard_fills() {
        let clock = FixedClock::at(T0);
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(1.0);
        for i in 0..(SHARDS * SHARD_SOFT_CAP * 2) {
            let _ = t.check(&format!("dev/key/{i}"), "iot:X", rate, clock.now());
            if i % 1000 == 0 {
                clock.set(clock.now() + 1_000);
            }
        }
        let held: usize = t
            .shards
            .iter()
            .map(|s| s.read().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(held <= SHARDS * (SHARD_SOFT_CAP + 1), "{held}");
    }

    #[test]
    fn concurrent_callers_never_get_more_than_the_burst() {
        let t = std::sync::Arc::new(Throttle::new(Vec::new()));
        let rate = Rate::per_second(100.0);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| t.check("c", "a", rate, T0).is_ok())
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(allowed, 100);
    }

    /// The hot path's cost, for BENCHMARKS.md: `cargo test --release -p certplane-core
    /// throttle_check_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throttle_check_cost() {
        let t = Throttle::new(Vec::new());
        let rate = Rate::per_second(1e9);
        let p = Principal::dev("123456789012", Some("AKIDEXAMPLE".into()));
        let n = 2_000_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            let caller = caller_key(&p);
            let _ = t.check(
                &caller,
                "iot:DescribeCertificate",
                rate,
                T0 + i64::from(i / 1000),
            );
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
        println!("throttle check (caller key + bucket): {ns:.0} ns per call");
    }

    #[test]
    fn caller_keys() {
        let dev = Principal::dev("123456789012", Some("AKIDEXAMPLE".into()));
        assert_eq!(caller_key(&dev), "123456789012/key/AKIDEXAMPLE");
        assert_eq!(caller_key(&Principal::dev("1", None)), "1/dev");
        let root = Principal::verified("1", Some("K".into()), Identity::Root, None);
        assert_eq!(caller_key(&root), "1/root");
        assert_eq!(
            caller_of("1", Some("alice"), false, Some("K")),
            "1/user/alice"
        );
    }
}
