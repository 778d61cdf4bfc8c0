//! Probes from `healthcheck` (the engine's check) and `x-shoal.health` (shoal's own).
//!
//! Readiness is what shoal's balancer uses: `x-shoal.health` when set, else the
//! healthcheck. Liveness is the healthcheck when set (a failing container is
//! restarted, as shoal replaces an unhealthy replica), else `x-shoal.health`. A start
//! period becomes a startup probe with the liveness check: the start period's worth of
//! failures, plus the usual ones, before the pod is restarted.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe as KProbe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use shoal_spec::{Healthcheck, Probe, Service};

use super::names::seconds;
use super::Findings;

/// Docker's defaults for a healthcheck.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: u32 = 3;
const START_INTERVAL: Duration = Duration::from_secs(5);

/// A check and its timing, before it is given a role.
struct Check {
    probe: KProbe,
    failures: u32,
    start_period: Duration,
    start_interval: Duration,
}

/// The liveness, readiness and startup probes of a service's container.
pub struct Probes {
    pub liveness: Option<KProbe>,
    pub readiness: Option<KProbe>,
    pub startup: Option<KProbe>,
}

pub fn probes(svc: &Service, f: &mut Findings<'_>) -> Probes {
    let engine = svc
        .healthcheck
        .as_ref()
        .and_then(|h| from_healthcheck(svc, h, f));
    let own = svc
        .x_shoal
        .health
        .as_ref()
        .and_then(|p| from_probe(svc, p, f));
    let readiness = own.as_ref().or(engine.as_ref()).map(|c| {
        let mut p = c.probe.clone();
        if let Some(h) = &svc.x_shoal.health {
            p.success_threshold = Some(h.healthy_after.max(1) as i32);
        }
        p
    });
    let live = engine.as_ref().or(own.as_ref());
    let liveness = live.map(|c| c.probe.clone());
    let startup = live.filter(|c| !c.start_period.is_zero()).map(|c| {
        let period = c.start_interval.max(Duration::from_secs(1));
        let mut p = c.probe.clone();
        p.period_seconds = Some(seconds(period));
        p.success_threshold = None;
        let during = seconds(c.start_period)
            .unsigned_abs()
            .div_ceil(seconds(period).unsigned_abs());
        let during = i32::try_from(during).unwrap_or(i32::MAX).max(1);
        p.failure_threshold = Some(during.saturating_add(i32::try_from(c.failures).unwrap_or(0)));
        p
    });
    Probes {
        liveness,
        readiness,
        startup,
    }
}

fn timed(mut probe: KProbe, period: Duration, timeout: Duration, failures: u32) -> KProbe {
    probe.period_seconds = Some(seconds(period).max(1));
    probe.timeout_seconds = Some(seconds(timeout).max(1));
    probe.failure_threshold = Some(failures.max(1) as i32);
    probe
}

fn from_healthcheck(svc: &Service, h: &Healthcheck, f: &mut Findings<'_>) -> Option<Check> {
    let path = format!("services.{}.healthcheck.test", svc.name);
    let command = match h.test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((kind, [line])) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), line.clone()]
        }
        Some((kind, _)) if kind == "NONE" => return None,
        _ => {
            f.warn(
                &path,
                "a healthcheck test that is not CMD or CMD-SHELL: no probe made from it",
            );
            return None;
        }
    };
    let probe = KProbe {
        exec: Some(ExecAction {
            command: Some(command),
        }),
        ..KProbe::default()
    };
    let period = h.interval.unwrap_or(INTERVAL);
    let failures = h.retries.unwrap_or(RETRIES);
    Some(Check {
        probe: timed(probe, period, h.timeout.unwrap_or(TIMEOUT), failures),
        failures,
        start_period: h.start_period.unwrap_or_default(),
        start_interval: h.start_interval.unwrap_or(START_INTERVAL),
    })
}

fn from_probe(svc: &Service, p: &Probe, f: &mut Findings<'_>) -> Option<Check> {
    let Some(port) = p.port.or_else(|| svc.probe_port()) else {
        f.warn(
            &format!("services.{}.x-shoal.health", svc.name),
            "the probe has no port: no probe made from it",
        );
        return None;
    };
    let port = IntOrString::Int(i32::from(port));
    let probe = match &p.http {
        Some(path) => KProbe {
            http_get: Some(HTTPGetAction {
                path: Some(path.clone()),
                port,
                ..HTTPGetAction::default()
            }),
            ..KProbe::default()
        },
        None => KProbe {
            tcp_socket: Some(TCPSocketAction {
                port,
                ..TCPSocketAction::default()
            }),
            ..KProbe::default()
        },
    };
    Some(Check {
        probe: timed(probe, p.interval, p.timeout, p.unhealthy_after),
        failures: p.unhealthy_after,
        start_period: p.start_period,
        start_interval: p.interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(loaded: &shoal_spec::Loaded) -> Findings<'_> {
        Findings {
            loaded,
            warnings: Vec::new(),
        }
    }

    fn load(yaml: &str) -> shoal_spec::Loaded {
        crate::kubernetes::tests::load(yaml)
    }

    #[test]
    fn a_healthcheck_is_liveness_and_readiness_with_a_startup_probe() {
        let l = load(
            "services:\n  db:\n    image: postgres\n    healthcheck:\n      test: [CMD, pg_isready]\n      interval: 2s\n      timeout: 1s\n      retries: 5\n      start_period: 30s\n      start_interval: 500ms\n",
        );
        let mut f = findings(&l);
        let p = probes(&l.project.services["db"], &mut f);
        let live = p.liveness.unwrap();
        assert_eq!(
            live.exec.unwrap().command.unwrap(),
            vec!["pg_isready".to_string()]
        );
        assert_eq!(
            (
                live.period_seconds,
                live.timeout_seconds,
                live.failure_threshold
            ),
            (Some(2), Some(1), Some(5))
        );
        assert!(p.readiness.unwrap().exec.is_some());
        let start = p.startup.unwrap();
        // 30 s at one-second checks, then the five usual failures.
        assert_eq!(
            (start.period_seconds, start.failure_threshold),
            (Some(1), Some(35))
        );
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn shoal_s_probe_is_readiness_and_the_healthcheck_liveness() {
        let l = load(
            "services:\n  web:\n    image: w\n    ports: [\"8080:80\"]\n    healthcheck:\n      test: [CMD-SHELL, curl -f localhost]\n    x-shoal:\n      health: {http: /healthz, interval: 500ms, healthy_after: 2, unhealthy_after: 4}\n",
        );
        let mut f = findings(&l);
        let p = probes(&l.project.services["web"], &mut f);
        let ready = p.readiness.unwrap();
        let get = ready.http_get.unwrap();
        assert_eq!(
            (get.path.as_deref(), get.port),
            (Some("/healthz"), IntOrString::Int(80))
        );
        assert_eq!(
            (
                ready.period_seconds,
                ready.success_threshold,
                ready.failure_threshold
            ),
            (Some(1), Some(2), Some(4))
        );
        let live = p.liveness.unwrap();
        assert_eq!(
            live.exec.unwrap().command.unwrap(),
            vec!["/bin/sh", "-c", "curl -f localhost"]
        );
        assert!(p.startup.is_none());
    }

    #[test]
    fn a_tcp_probe_alone_is_both() {
        let l = load(
            "services:\n  cache:\n    image: redis\n    expose: [\"6379\"]\n    x-shoal:\n      health: {tcp: true}\n",
        );
        let mut f = findings(&l);
        let p = probes(&l.project.services["cache"], &mut f);
        assert_eq!(
            p.liveness.unwrap().tcp_socket.unwrap().port,
            IntOrString::Int(6379)
        );
        assert!(p.readiness.unwrap().tcp_socket.is_some());
    }
}
