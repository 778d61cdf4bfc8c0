//! The retry budget: retries may add at most a fraction of the traffic, plus a small
//! floor, so that an outage cannot multiply the load on what is left.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket filled by requests.
pub struct Budget {
    state: Mutex<(f64, Instant)>,
    /// Tokens each request deposits (the retry ratio).
    ratio: f64,
    /// Tokens per second deposited regardless of traffic.
    floor_per_sec: f64,
    /// Most tokens kept.
    cap: f64,
}

impl Budget {
    /// Retries up to `ratio` of requests, plus `floor_per_sec` retries a second.
    pub fn new(ratio: f64, floor_per_sec: f64) -> Budget {
        Budget {
            state: Mutex::new((floor_per_sec, Instant::now())),
            ratio,
            floor_per_sec,
            cap: (floor_per_sec * 10.0).max(100.0),
        }
    }

    fn refill(&self, s: &mut (f64, Instant)) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + secs * self.floor_per_sec).min(self.cap);
        s.1 = now;
    }

    /// A request was made.
    pub fn deposit(&self) {
        let mut s = self.state.lock().expect("not poisoned");
        s.0 = (s.0 + self.ratio).min(self.cap);
    }

    /// Takes a token for a retry; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        self.refill(&mut s);
        // Deposits of a fraction add up to a hair under whole numbers.
        if s.0 >= 1.0 - 1e-9 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_fraction_of_requests() {
        let b = Budget::new(0.2, 0.0);
        for _ in 0..100 {
            b.deposit();
        }
        let allowed = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(allowed, 20);
    }
}
