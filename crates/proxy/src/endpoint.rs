//! One replica as the balancer sees it: its address, its load, its latency estimate,
//! its failure record and its idle upstream connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock;
use crate::metrics::Stats;
use crate::upstream::Pool;

/// Latency assumed for a replica that has not answered yet (Linkerd's default).
const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// How fast the latency estimate forgets (Linkerd's default decay).
const DECAY: Duration = Duration::from_secs(10);

/// A replica.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests (or TCP connections) in progress.
    pub(crate) in_flight: AtomicU32,
    /// Counters and the latency histogram.
    pub stats: Stats,
    /// Idle HTTP/1 connections to it.
    pub(crate) pool: Pool,
    /// Set when it left the backend set: no new requests, in-flight ones finish.
    pub(crate) draining: AtomicBool,
    /// When it last made progress (took its first pending request, or finished one),
    /// µs on the proxy's clock.
    progress_us: AtomicU64,
    ewma: Mutex<PeakEwma>,
    accrual: Accrual,
}

impl Endpoint {
    /// A replica at `addr`.
    pub fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            in_flight: AtomicU32::new(0),
            stats: Stats::default(),
            pool: Pool::default(),
            draining: AtomicBool::new(false),
            progress_us: AtomicU64::new(0),
            ewma: Mutex::new(PeakEwma::new(Instant::now())),
            accrual: Accrual::default(),
        }
    }

    /// Requests (or TCP connections) in progress now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The balancer's cost: latency estimate × (in-flight + 1). A replica with work
    /// pending cannot be faster than the time since it last made progress: that keeps
    /// a slow replica that has not answered yet (so has no estimate) from drawing
    /// everything.
    pub fn load(&self, now: Instant) -> f64 {
        let mut rtt = self.ewma.lock().expect("not poisoned").estimate(now);
        let pending = self.in_flight.load(Ordering::Relaxed);
        if pending > 0 {
            let stalled_us =
                clock::now_us().saturating_sub(self.progress_us.load(Ordering::Relaxed));
            rtt = rtt.max(stalled_us as f64 * 1000.0);
        }
        rtt * f64::from(pending + 1)
    }

    /// Records a round-trip time (to the response head).
    pub fn observe_rtt(&self, rtt: Duration, now: Instant) {
        self.ewma.lock().expect("not poisoned").observe(rtt, now);
        self.progress_us.store(clock::now_us(), Ordering::Relaxed);
    }

    /// A request starts: counts it in flight.
    pub fn begin(&self) {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.progress_us.store(clock::now_us(), Ordering::Relaxed);
        }
    }

    /// A request ends.
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.progress_us.store(clock::now_us(), Ordering::Relaxed);
    }

    /// Whether it may take a request now. An ejected replica whose time is up takes
    /// exactly one (the probe) until that one's outcome is known.
    pub fn available(&self, now_ms: u64) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.accrual.admit(now_ms)
    }

    /// Records the outcome of a request; returns true when this failure ejected it.
    pub fn record(&self, ok: bool, policy: &EjectPolicy, now_ms: u64) -> bool {
        if ok {
            if self.accrual.success() {
                self.stats.returns.fetch_add(1, Ordering::Relaxed);
            }
            false
        } else {
            let ejected = self.accrual.failure(policy, now_ms);
            if ejected {
                self.stats.ejections.fetch_add(1, Ordering::Relaxed);
            }
            ejected
        }
    }

    /// Gives up the probe slot without an outcome (the request never reached it, or
    /// its client left).
    pub fn release_probe(&self) {
        self.accrual.probing.store(false, Ordering::Release);
    }

    /// True while ejected (its time not yet up).
    pub fn ejected(&self, now_ms: u64) -> bool {
        self.accrual.until.load(Ordering::Relaxed) > now_ms
    }
}

/// Counts a request against its replica's in-flight number while it lives.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    /// Starts counting.
    pub fn start(endpoint: Arc<Endpoint>) -> InFlight {
        endpoint.begin();
        InFlight(endpoint)
    }

    /// The replica it counts against.
    pub fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Peak-EWMA of round-trip times: jumps up to a slower sample at once, decays towards
/// faster ones, and drifts back towards fast as time passes without samples.
struct PeakEwma {
    estimate_ns: f64,
    at: Instant,
    /// False until the first sample, which replaces the default outright: a fast
    /// replica should not look like the default 30 ms for the ten seconds the decay
    /// would take to forget it.
    observed: bool,
}

impl PeakEwma {
    fn new(now: Instant) -> PeakEwma {
        PeakEwma {
            estimate_ns: DEFAULT_RTT.as_nanos() as f64,
            at: now,
            observed: false,
        }
    }

    fn estimate(&self, now: Instant) -> f64 {
        self.estimate_ns * self.weight(now)
    }

    fn weight(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (-elapsed / DECAY.as_secs_f64()).exp()
    }

    fn observe(&mut self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        if !self.observed || sample > self.estimate_ns {
            self.observed = true;
            self.estimate_ns = sample;
        } else {
            let w = self.weight(now);
            self.estimate_ns = self.estimate_ns * w + sample * (1.0 - w);
        }
        self.at = now;
    }
}

/// When consecutive failures eject a replica, and for how long.
#[derive(Clone, Debug)]
pub struct EjectPolicy {
    /// Consecutive failures that eject.
    pub failures: u32,
    /// First ejection; each one after doubles it.
    pub base: Duration,
    /// Longest ejection.
    pub max: Duration,
}

impl Default for EjectPolicy {
    fn default() -> EjectPolicy {
        EjectPolicy {
            failures: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Failure accrual: consecutive failures, the ejection deadline, and the probe.
#[derive(Default)]
struct Accrual {
    consecutive: AtomicU32,
    /// Ejections in a row (reset by a success): the backoff exponent.
    ejections: AtomicU32,
    /// Ejected until this time (ms on the proxy's clock); 0 when not ejected.
    until: AtomicU64,
    /// A probe request is out.
    probing: AtomicBool,
}

impl Accrual {
    fn admit(&self, now_ms: u64) -> bool {
        let until = self.until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        // Time is up: one probe at a time decides.
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// True when this success returned an ejected replica.
    fn success(&self) -> bool {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if self.until.load(Ordering::Relaxed) != 0 {
            self.until.store(0, Ordering::Relaxed);
            self.ejections.store(0, Ordering::Relaxed);
            self.probing.store(false, Ordering::Release);
            return true;
        }
        false
    }

    fn failure(&self, policy: &EjectPolicy, now_ms: u64) -> bool {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let probe_failed = self.probing.swap(false, Ordering::AcqRel);
        if n >= policy.failures || probe_failed {
            let k = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
            let time = policy.base.saturating_mul(1 << k).min(policy.max);
            self.until
                .store(now_ms + time.as_millis() as u64, Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe(Duration::from_millis(100), t0);
        assert!((e.estimate(t0) - 100e6).abs() < 1.0);
        // A fast sample a second later pulls the estimate down, but not all the way.
        let t1 = t0 + Duration::from_secs(1);
        e.observe(Duration::from_millis(10), t1);
        let est = e.estimate(t1) / 1e6;
        assert!(est > 10.0 && est < 100.0, "{est}");
    }

    #[test]
    fn ejection_backs_off_and_one_probe_decides() {
        let ep = Endpoint::new("127.0.0.1:1".parse().unwrap());
        let policy = EjectPolicy {
            failures: 3,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert!(!ep.record(false, &policy, 0));
        assert!(!ep.record(false, &policy, 0));
        assert!(ep.record(false, &policy, 0), "third failure ejects");
        assert!(!ep.available(50));
        assert!(ep.available(100), "time is up: a probe may go");
        assert!(!ep.available(100), "only one probe at a time");
        // The probe fails: ejected again, for twice as long.
        assert!(ep.record(false, &policy, 100));
        assert!(!ep.available(299));
        assert!(ep.available(300));
        // The probe succeeds: back in.
        ep.record(true, &policy, 300);
        assert!(ep.available(300) && ep.available(300));
        let snap = ep.stats.snapshot();
        assert_eq!((snap.ejections, snap.returns), (2, 1));
    }
}
