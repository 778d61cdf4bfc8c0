//! The policy against simulated load, second by second: replicas become ready one
//! second after they are asked for, and the metric is the offered concurrency.

use std::time::Duration;

use shoal_scale::{Autoscaler, Config, Hpa, Kpa, Policy, Sample};

/// Runs `seconds` of `load(t)` from `start` replicas; returns the desired count after
/// each second.
fn simulate(config: Config, start: u32, seconds: u64, load: impl Fn(u64) -> f64) -> Vec<u32> {
    simulate_with(
        &mut Autoscaler::new(config, Duration::ZERO),
        start,
        seconds,
        load,
    )
}

/// The same, for any policy: the one actuator all policies share.
fn simulate_with(
    policy: &mut dyn Policy,
    start: u32,
    seconds: u64,
    load: impl Fn(u64) -> f64,
) -> Vec<u32> {
    let mut desired = start;
    // (second asked for) per replica beyond the ready ones.
    let mut starting: Vec<u64> = Vec::new();
    let mut ready = start;
    let mut out = Vec::new();
    for t in 0..seconds {
        // Replicas asked for a second ago are ready now.
        let now_ready = starting.iter().filter(|s| t > **s).count() as u32;
        starting.retain(|s| t <= *s);
        ready += now_ready;
        policy.record(Sample {
            at: Duration::from_secs(t),
            total: load(t),
            ready,
        });
        let d = policy
            .decide(Duration::from_secs(t), desired, ready)
            .desired;
        if d > desired {
            starting.extend(std::iter::repeat_n(t, (d - desired) as usize));
        } else if d < desired {
            let mut remove = desired - d;
            // Not-yet-ready ones go first.
            while remove > 0 && starting.pop().is_some() {
                remove -= 1;
            }
            ready -= remove;
        }
        desired = d;
        out.push(desired);
    }
    out
}

fn reversals(series: &[u32]) -> usize {
    let mut last_dir = 0i32;
    let mut n = 0;
    for w in series.windows(2) {
        let dir = (w[1] as i32 - w[0] as i32).signum();
        if dir != 0 {
            if last_dir != 0 && dir != last_dir {
                n += 1;
            }
            last_dir = dir;
        }
    }
    n
}

fn config() -> Config {
    Config::new(1, 50, "concurrency", 10.0)
}

#[test]
fn a_tenfold_step_is_met_within_the_panic_window_without_overshoot() {
    let d = simulate(config(), 1, 200, |t| if t < 60 { 10.0 } else { 100.0 });
    assert_eq!(d[59], 1, "steady at 10 needs one replica");
    // The tick that sees the step panics (its newest sample, not the window's
    // average), and the count doubles-or-adds-four per tick: 5, then 10.
    assert_eq!(d[60], 5, "{:?}", &d[58..70]);
    let reached = (60..200)
        .find(|t| d[*t as usize] >= 10)
        .expect("reaches 10");
    assert!(reached <= 61, "took {} s: {:?}", reached - 60, &d[58..70]);
    assert!(
        d.iter().all(|n| *n <= 11),
        "overshoot: {:?}",
        d.iter().max()
    );
    assert_eq!(reversals(&d[60..]), 0, "{:?}", &d[60..]);
}

#[test]
fn a_slow_ramp_is_followed() {
    // 10 → 100 over 600 s.
    let load = |t: u64| 10.0 + 90.0 * (t.min(600) as f64 / 600.0);
    let d = simulate(config(), 1, 700, load);
    // Within two replicas of the need all along (the stable window averages 30 s of
    // a rising load, and a deviation within the 10 % tolerance changes nothing), and
    // exactly at it once the ramp levels off.
    for t in 60..700u64 {
        let need = (load(t) / 10.0).ceil() as u32;
        let got = d[t as usize];
        assert!(
            got + 2 >= need && got <= need + 1,
            "t={t}: need {need}, have {got}"
        );
    }
    assert_eq!(d[699], 10);
    assert_eq!(reversals(&d), 0);
}

#[test]
fn noisy_steady_load_never_flaps() {
    // 50 ± 25 %, redrawn every 5 s, for 10 minutes (a fixed pseudo-random sequence).
    let mut x = 0x9e3779b97f4a7c15u64;
    let draws: Vec<f64> = (0..130)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            50.0 * (0.75 + 0.5 * (x % 10_000) as f64 / 10_000.0)
        })
        .collect();
    let d = simulate(config(), 1, 600, |t| draws[(t / 5) as usize]);
    assert_eq!(reversals(&d[30..]), 0, "{:?}", &d[30..]);
    let settled = d[599];
    assert!((5..=8).contains(&settled), "{settled}");
}

#[test]
fn a_short_spike_is_not_followed_by_an_early_scale_down() {
    let d = simulate(config(), 2, 400, |t| {
        if (100..103).contains(&t) {
            200.0
        } else {
            20.0
        }
    });
    let peak = *d[100..110].iter().max().unwrap();
    assert!(peak > 2, "the spike is met: {:?}", &d[98..110]);
    let peak_at = (100..110).find(|t| d[*t] == peak).unwrap();
    // Panic lasts a stable window (30 s) from the spike, and the scale-down delay
    // keeps what the spike asked for that long too: nothing goes away right after.
    assert!(
        d[peak_at..peak_at + 25].iter().all(|n| *n == peak),
        "{:?}",
        &d[peak_at..peak_at + 25]
    );
    assert_eq!(d[399], 2, "back to what 20 needs");
}

#[test]
fn a_halved_load_goes_down_a_third_of_the_delay_after_it_drops() {
    // 60 s at 100, 60 s at 10, five times: a drop to a tenth is no noise, so replicas
    // go a third of the scale-down delay (10 s) after the short window sees it.
    let load = |t: u64| if (t / 60) % 2 == 1 { 10.0 } else { 100.0 };
    let d = simulate(config(), 10, 600, load);
    for drop in [60usize, 180, 300, 420, 540] {
        assert!(
            d[drop..drop + 10].iter().all(|n| *n == 10),
            "kept a third of the delay: {:?}",
            &d[drop..drop + 20]
        );
        assert_eq!(d[drop + 16], 1, "gone after it: {:?}", &d[drop..drop + 20]);
    }
    let used: u32 = d.iter().sum();
    let ideal: u32 = (0..600).map(|t| (load(t) / 10.0).ceil() as u32).sum();
    let ratio = f64::from(used) / f64::from(ideal);
    assert!(
        ratio < 1.2,
        "replica-seconds {used} vs ideal {ideal}: {ratio:.2}"
    );
    assert_eq!(reversals(&d[60..120]), 0, "{:?}", &d[60..120]);
}

#[test]
fn a_smaller_drop_waits_the_whole_delay() {
    // 100 → 60: 10 replicas → 6, more than half of them still needed.
    let d = simulate(config(), 10, 200, |t| if t < 60 { 100.0 } else { 60.0 });
    assert!(
        d[60..88].iter().all(|n| *n == 10),
        "kept through the delay: {:?}",
        &d[60..100]
    );
    assert_eq!(d[199], 6, "{:?}", &d[60..100]);
}

#[test]
fn bounds_and_rate_limits() {
    let mut c = config();
    c.max = 5;
    let d = simulate(c.clone(), 1, 60, |_| 1000.0);
    assert_eq!(*d.iter().max().unwrap(), 5);
    // From 1 towards 100: at most max(2 × n, n + 4) a step.
    let d = simulate(Config::new(1, 200, "concurrency", 10.0), 1, 60, |_| 1000.0);
    for w in d.windows(2) {
        assert!(w[1] <= (w[0] * 2).max(w[0] + 4), "{w:?}");
    }
    assert_eq!(*d.last().unwrap(), 100);
    c.min = 2;
    let d = simulate(c, 4, 200, |_| 0.0);
    assert_eq!(*d.last().unwrap(), 2);
    assert!(d.iter().all(|n| *n >= 2));
}

#[test]
fn after_a_restart_it_waits_for_fresh_data_before_scaling_down() {
    let mut a = Autoscaler::new(config(), Duration::from_secs(1000));
    for t in 1000..1029 {
        a.record(Sample {
            at: Duration::from_secs(t),
            total: 5.0,
            ready: 8,
        });
        let d = a.decide(Duration::from_secs(t), 8, 8);
        assert_eq!(d.desired, 8, "t={t}: scaled down on partial data");
    }
    let mut later = 8;
    for t in 1029..1100 {
        a.record(Sample {
            at: Duration::from_secs(t),
            total: 5.0,
            ready: later,
        });
        later = a.decide(Duration::from_secs(t), later, later).desired;
    }
    assert_eq!(later, 1);
}

#[test]
fn shoal_meets_a_step_before_the_hpa_and_kpa_emulations() {
    // 10 → 100 in flight at t = 120 s; target 10 per replica: 10 replicas needed.
    let load = |t: u64| if t < 120 { 10.0 } else { 100.0 };
    let reached = |d: &[u32]| (120..d.len()).find(|t| d[*t] >= 10).map(|t| t - 120);
    let shoal = simulate(config(), 1, 400, load);
    let hpa = simulate_with(
        &mut Hpa::new(Config::new(1, 50, "concurrency", 10.0)),
        1,
        400,
        load,
    );
    let kpa = simulate_with(
        &mut Kpa::new(Config::new(1, 50, "concurrency", 10.0)),
        1,
        400,
        load,
    );
    let (s, h, k) = (
        reached(&shoal).unwrap(),
        reached(&hpa).unwrap(),
        reached(&kpa).unwrap(),
    );
    eprintln!("time to 10 replicas after the step: shoal {s} s, KPA {k} s, HPA {h} s");
    assert!(s <= 3, "shoal took {s} s");
    assert!(s < k && s < h, "shoal {s} s, KPA {k} s, HPA {h} s");
    // The HPA's 15 s sync and its +100 %/+4 steps: several periods.
    assert!(h >= 15, "HPA {h} s");
}
