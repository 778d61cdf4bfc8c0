//! Choosing a replica: least-request power of two choices, round robin, or rendezvous
//! hashing on a key.

use std::cell::Cell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Strategy;
use crate::endpoint::Endpoint;

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let addr = &t as *const u64 as u64;
        (t ^ addr.rotate_left(32)) | 1
    });
}

/// A fast thread-local xorshift; balancing needs spread, not secrecy.
fn random(below: usize) -> usize {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        (x % below as u64) as usize
    })
}

/// Hashes a key the same way in every process.
pub fn hash_key(key: &[u8]) -> u64 {
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(key)
}

fn score(key: u64, addr: &SocketAddr) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    addr.hash(&mut h);
    h.finish()
}

/// Picks a replica from `set`, skipping those in `tried` (by identity: a replica that
/// left the set and came back at the same address is a new one). `key` is the affinity key
/// for the hash strategy. The chosen replica has admitted the request (an ejected one
/// past its time admits a single probe).
pub fn pick(
    set: &[Arc<Endpoint>],
    strategy: &Strategy,
    key: Option<u64>,
    rr: &AtomicUsize,
    tried: &[Arc<Endpoint>],
    now_ms: u64,
) -> Option<Arc<Endpoint>> {
    let usable = |e: &Endpoint| {
        !tried.iter().any(|t| std::ptr::eq::<Endpoint>(&**t, e))
            && !e.ejected(now_ms)
            && !e.draining.load(Ordering::Relaxed)
    };
    // The common cases without building a candidate list: this runs per request.
    match strategy {
        Strategy::RoundRobin | Strategy::Hash(_)
            if key.is_none() || matches!(strategy, Strategy::RoundRobin) =>
        {
            let n = set.len();
            let start = rr.fetch_add(1, Ordering::Relaxed);
            return (0..n)
                .map(|i| &set[(start + i) % n.max(1)])
                .find(|e| usable(e) && e.available(now_ms))
                .cloned();
        }
        Strategy::LeastRequest if set.len() >= 2 => {
            let n = set.len();
            let a = random(n);
            let mut b = random(n - 1);
            if b >= a {
                b += 1;
            }
            let (ea, eb) = (&set[a], &set[b]);
            let chosen = match (usable(ea), usable(eb)) {
                (true, true) => {
                    let now = Instant::now();
                    Some(if ea.load(now) <= eb.load(now) { ea } else { eb })
                }
                (true, false) => Some(ea),
                (false, true) => Some(eb),
                (false, false) => None,
            };
            if let Some(e) = chosen.filter(|e| e.available(now_ms)) {
                return Some(e.clone());
            }
        }
        _ => {}
    }
    let mut candidates: Vec<&Arc<Endpoint>> = set
        .iter()
        .filter(|e| {
            !tried.iter().any(|t| Arc::ptr_eq(t, e))
                && !e.ejected(now_ms)
                && !e.draining.load(Ordering::Relaxed)
        })
        .collect();
    while !candidates.is_empty() {
        let i = match (strategy, key) {
            (Strategy::Hash(_), Some(k)) => (0..candidates.len())
                .max_by_key(|&i| score(k, &candidates[i].addr))
                .expect("not empty"),
            (Strategy::RoundRobin, _) | (Strategy::Hash(_), None) => {
                rr.fetch_add(1, Ordering::Relaxed) % candidates.len()
            }
            (Strategy::LeastRequest, _) => {
                let n = candidates.len();
                if n == 1 {
                    0
                } else {
                    let a = random(n);
                    let mut b = random(n - 1);
                    if b >= a {
                        b += 1;
                    }
                    let now = Instant::now();
                    if candidates[a].load(now) <= candidates[b].load(now) {
                        a
                    } else {
                        b
                    }
                }
            }
        };
        if candidates[i].available(now_ms) {
            return Some(candidates[i].clone());
        }
        candidates.swap_remove(i);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(n: u8) -> Vec<Arc<Endpoint>> {
        (1..=n)
            .map(|i| Arc::new(Endpoint::new(format!("10.0.0.{i}:80").parse().unwrap())))
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_and_skips_tried() {
        let s = set(3);
        let rr = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6)
            .map(|_| {
                pick(&s, &Strategy::RoundRobin, None, &rr, &[], 0)
                    .unwrap()
                    .addr
            })
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        let tried = [s[0].clone(), s[1].clone()];
        assert_eq!(
            pick(&s, &Strategy::RoundRobin, None, &rr, &tried, 0)
                .unwrap()
                .addr,
            s[2].addr
        );
        let all: Vec<_> = s.to_vec();
        assert!(pick(&s, &Strategy::RoundRobin, None, &rr, &all, 0).is_none());
    }

    #[test]
    fn least_request_avoids_the_slow_and_the_busy() {
        let s = set(3);
        let now = Instant::now();
        s[0].observe_rtt(Duration::from_millis(500), now);
        s[1].observe_rtt(Duration::from_millis(5), now);
        s[2].observe_rtt(Duration::from_millis(5), now);
        s[2].in_flight.store(50, Ordering::Relaxed);
        let rr = AtomicUsize::new(0);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            let e = pick(&s, &Strategy::LeastRequest, None, &rr, &[], 0).unwrap();
            counts[s.iter().position(|x| x.addr == e.addr).unwrap()] += 1;
        }
        // The fast idle replica wins every pair it is in: two thirds of the picks.
        assert!(counts[1] > 1900, "{counts:?}");
        assert!(counts[0] < 1100 && counts[2] < 1100, "{counts:?}");
    }

    #[test]
    fn a_stalled_replica_without_an_estimate_does_not_draw_everything() {
        let s = set(2);
        // Replica 0 took a request a while ago and has not answered; replica 1 is
        // answering in about a millisecond.
        s[0].begin();
        std::thread::sleep(Duration::from_millis(20));
        s[1].observe_rtt(Duration::from_millis(1), Instant::now());
        let now = Instant::now();
        assert!(
            s[0].load(now) > s[1].load(now) * 5.0,
            "{} vs {}",
            s[0].load(now),
            s[1].load(now)
        );
    }

    #[test]
    fn hash_is_sticky_and_stable_when_others_leave() {
        let s = set(4);
        let rr = AtomicUsize::new(0);
        let strategy = Strategy::Hash(crate::config::HashOn::ClientIp);
        let key = hash_key(b"user-42");
        let first = pick(&s, &strategy, Some(key), &rr, &[], 0).unwrap().addr;
        for _ in 0..10 {
            assert_eq!(
                pick(&s, &strategy, Some(key), &rr, &[], 0).unwrap().addr,
                first
            );
        }
        let others: Vec<_> = s
            .iter()
            .filter(|e| e.addr != first)
            .take(1)
            .cloned()
            .collect();
        let fewer: Vec<_> = s
            .iter()
            .filter(|e| e.addr != others[0].addr)
            .cloned()
            .collect();
        assert_eq!(
            pick(&fewer, &strategy, Some(key), &rr, &[], 0)
                .unwrap()
                .addr,
            first
        );
    }

    #[test]
    fn ejected_replicas_are_skipped() {
        let s = set(2);
        let policy = crate::endpoint::EjectPolicy::default();
        for _ in 0..policy.failures {
            s[0].record(false, &policy, 0);
        }
        let rr = AtomicUsize::new(0);
        for _ in 0..10 {
            assert_eq!(
                pick(&s, &Strategy::RoundRobin, None, &rr, &[], 10)
                    .unwrap()
                    .addr,
                s[1].addr
            );
        }
    }
}
