//! Time, behind a seam: the control plane reads a [`Clock`], which tests replace with a
//! [`FakeClock`] they move by hand, in milliseconds, without waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Monotonic time since some start.
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since the clock started.
    fn now(&self) -> Duration;
}

/// The real clock.
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct FakeClock(Mutex<Duration>);

impl FakeClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("not poisoned") += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().expect("not poisoned")
    }
}
