//! The restart policy: whether a replica that failed is started again, and after how
//! long (the crash-loop backoff).

use std::time::Duration;

use shoal_spec::{Restart, RestartCondition, Service};

/// The crash-loop backoff of a service. The first restart waits
/// `deploy.restart_policy.delay` (0 when unset, as in the Compose Specification, and as
/// the engine and the kubelet restart a first crash at once); each one after it waits
/// twice as long as the one before, from at least `floor`, up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub base: Duration,
    /// Shortest delay from the second restart on.
    pub floor: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// A replica Ready this long has its restart count reset
    /// (`deploy.restart_policy.window`, else 60 s).
    pub reset_after: Duration,
}

impl Backoff {
    /// The backoff of `svc`.
    pub fn of(svc: &Service) -> Backoff {
        let p = svc.deploy.restart_policy.as_ref();
        Backoff {
            base: p.and_then(|p| p.delay).unwrap_or_default(),
            floor: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            reset_after: p.and_then(|p| p.window).unwrap_or(Duration::from_secs(60)),
        }
    }

    /// The delay before restart number `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        if n <= 1 {
            return self.base.min(self.cap);
        }
        let factor = 1u32 << (n - 2).min(16);
        self.base
            .max(self.floor)
            .saturating_mul(factor)
            .min(self.cap)
    }
}

/// Whether an exited replica is started again, under `deploy.restart_policy` when the
/// service sets it, else under `restart:`.
pub fn should_restart(svc: &Service, exit_code: i64, attempts: u32) -> bool {
    if let Some(p) = &svc.deploy.restart_policy {
        let wanted = match p.condition {
            RestartCondition::None => false,
            RestartCondition::OnFailure => exit_code != 0,
            RestartCondition::Any => true,
        };
        return wanted && p.max_attempts.is_none_or(|max| attempts < max);
    }
    match svc.restart.as_ref().unwrap_or(&Restart::No) {
        Restart::No => false,
        Restart::Always | Restart::UnlessStopped => true,
        Restart::OnFailure(max) => exit_code != 0 && max.is_none_or(|m| attempts < m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_at_once_then_doubling_and_capped() {
        let b = Backoff {
            base: Duration::ZERO,
            floor: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        let slow = Backoff {
            base: Duration::from_secs(5),
            ..b
        };
        assert_eq!(slow.delay(1), Duration::from_secs(5));
        assert_eq!(slow.delay(2), Duration::from_secs(5));
        assert_eq!(slow.delay(3), Duration::from_secs(10));
    }
}
