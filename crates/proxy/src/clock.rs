//! The proxy's own monotonic clock, started at its first reading: ejection deadlines
//! in milliseconds, replica progress in microseconds, as plain integers that fit in
//! atomics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Milliseconds on the proxy's clock.
pub fn now_ms() -> u64 {
    since_start().as_millis() as u64
}

/// Microseconds on the proxy's clock.
pub fn now_us() -> u64 {
    since_start().as_micros() as u64
}
