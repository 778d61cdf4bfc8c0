//! Rolling updates from `deploy.update_config`, autoscalers from `x-shoal.autoscale`.

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use shoal_spec::{FailureAction, Metric, Order, Policy, Project, Service};

use super::names::{dns_label, seconds};
use super::{labels, Findings, Workload};

/// The names of the per-pod metrics an autoscaler of a request metric reads. The
/// cluster's metrics adapter (prometheus-adapter, KEDA) must serve them from what the
/// pods' traffic shows; shoal measures them in its balancer, which Kubernetes does not
/// run.
pub const RPS_METRIC: &str = "shoal_requests_per_second";
/// In-flight requests per pod.
pub const CONCURRENCY_METRIC: &str = "shoal_requests_in_flight";
/// The 95th percentile of request latency per pod, in milliseconds.
pub const LATENCY_METRIC: &str = "shoal_request_latency_p95_milliseconds";

/// `start-first`: up to `parallelism` new pods beside the old ones, none taken away
/// before its successor is ready; `stop-first`: the reverse. `parallelism: 0` (all at
/// once) is 100 %.
pub fn deployment_strategy(svc: &Service, f: &mut Findings<'_>) -> DeploymentStrategy {
    let uc = svc.deploy.update_config.clone().unwrap_or_default();
    let batch = match uc.parallelism.unwrap_or(1) {
        0 => IntOrString::String("100%".into()),
        n => IntOrString::Int(i32::try_from(n).unwrap_or(i32::MAX)),
    };
    let (surge, unavailable) = match uc.order.unwrap_or_else(|| svc.default_order()) {
        Order::StartFirst => (batch, IntOrString::Int(0)),
        Order::StopFirst => (IntOrString::Int(0), batch),
    };
    match uc.failure_action {
        Some(FailureAction::Rollback) => f.warn(
            &format!("services.{}.deploy.update_config.failure_action", svc.name),
            "Kubernetes marks a stuck rollout failed after progressDeadlineSeconds but does not roll it back: `kubectl rollout undo` does",
        ),
        Some(FailureAction::Pause) => f.warn(
            &format!("services.{}.deploy.update_config.failure_action", svc.name),
            "Kubernetes does not pause a failing rollout: it stops making progress and is marked failed",
        ),
        Some(FailureAction::Continue) | None => {}
    }
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    }
}

/// `update_config.monitor`: how long a new pod must stay ready to count.
pub fn min_ready_seconds(svc: &Service) -> Option<i32> {
    let monitor = svc.deploy.update_config.as_ref()?.monitor?;
    (!monitor.is_zero()).then(|| seconds(monitor))
}

/// `x-shoal.update.ready_timeout`: how long a rollout may make no progress.
pub fn progress_deadline(svc: &Service) -> Option<i32> {
    svc.x_shoal
        .update
        .as_ref()?
        .ready_timeout
        .map(|t| seconds(t).max(1))
}

/// An `autoscaling/v2` autoscaler with the same bounds, metric and target. CPU is
/// an average value (the target percent of the replica's CPU limit, one core when it
/// has none, as shoal measures it), so it needs no CPU request; the request metrics
/// are per-pod metrics of the names above. The scale-down delay is the scale-down
/// stabilization window; scaling up is not held back, as shoal's panic mode is not.
pub fn autoscaler(
    project: &Project,
    svc: &Service,
    kind: Workload,
    f: &mut Findings<'_>,
) -> Option<HorizontalPodAutoscaler> {
    let a = svc.x_shoal.autoscale.as_ref()?;
    let path = format!("services.{}.x-shoal.autoscale", svc.name);
    if kind == Workload::DaemonSet {
        f.warn(
            &path,
            "a global service runs one pod per node: no autoscaler made",
        );
        return None;
    }
    match a.policy {
        Policy::Shoal | Policy::Hpa => {}
        Policy::Kpa => f.warn(
            &format!("{path}.policy"),
            "the HorizontalPodAutoscaler decides as the HPA does, not as Knative's KPA",
        ),
    }
    let pods = |name: &str, value: f64| MetricSpec {
        type_: "Pods".into(),
        pods: Some(PodsMetricSource {
            metric: MetricIdentifier {
                name: name.into(),
                selector: None,
            },
            target: average(value),
        }),
        ..MetricSpec::default()
    };
    let metric = match a.metric {
        Metric::Cpu => {
            let cores = svc.deploy.resources.limits.cpus.unwrap_or(1.0);
            MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "AverageValue".into(),
                        average_value: Some(Quantity(millicores(a.target / 100.0 * cores))),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }
        }
        Metric::Rps => pods(RPS_METRIC, a.target),
        Metric::Concurrency => pods(CONCURRENCY_METRIC, a.target),
        Metric::LatencyP95 => pods(LATENCY_METRIC, a.target),
    };
    if a.metric != Metric::Cpu {
        f.warn(
            &format!("{path}.metric"),
            format!(
                "the autoscaler reads the per-pod metric `{}`, which the cluster's metrics adapter must serve",
                metric.pods.as_ref().map(|p| p.metric.name.as_str()).unwrap_or_default()
            ),
        );
    }
    if a.min == 0 {
        f.warn(
            &format!("{path}.min"),
            "a HorizontalPodAutoscaler keeps at least one pod: min is 1 there",
        );
    }
    let window = |d: std::time::Duration| HPAScalingRules {
        stabilization_window_seconds: Some(seconds(d).min(3600)),
        ..HPAScalingRules::default()
    };
    let name = dns_label(&svc.name);
    Some(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(project, svc)),
            ..ObjectMeta::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: kind.kind().into(),
                name,
            },
            min_replicas: Some(a.min.max(1) as i32),
            max_replicas: a.max as i32,
            metrics: Some(vec![metric]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(window(a.scale_down_delay)),
                scale_up: Some(window(std::time::Duration::ZERO)),
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

fn average(value: f64) -> MetricTarget {
    MetricTarget {
        type_: "AverageValue".into(),
        average_value: Some(Quantity(quantity(value))),
        ..MetricTarget::default()
    }
}

/// A quantity for a metric value: whole numbers as they are, fractions in milli-units.
fn quantity(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{}", value as i64)
    } else {
        format!("{}m", (value * 1000.0).round() as i64)
    }
}

/// CPU cores as Kubernetes writes them: `2`, `500m`.
pub fn millicores(cores: f64) -> String {
    let m = (cores * 1000.0).round() as i64;
    if m % 1000 == 0 {
        format!("{}", m / 1000)
    } else {
        format!("{m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::tests::load;

    #[test]
    fn update_order_and_parallelism_become_surge_and_unavailable() {
        let l = load(
            "services:\n  web:\n    image: w\n    deploy:\n      update_config: {order: start-first, parallelism: 2, monitor: 10s}\n  db:\n    image: d\n    deploy:\n      update_config: {order: stop-first, parallelism: 0, failure_action: rollback}\n",
        );
        let mut f = Findings {
            loaded: &l,
            warnings: Vec::new(),
        };
        let web = deployment_strategy(&l.project.services["web"], &mut f)
            .rolling_update
            .unwrap();
        assert_eq!(
            (web.max_surge, web.max_unavailable),
            (Some(IntOrString::Int(2)), Some(IntOrString::Int(0)))
        );
        assert_eq!(min_ready_seconds(&l.project.services["web"]), Some(10));
        let db = deployment_strategy(&l.project.services["db"], &mut f)
            .rolling_update
            .unwrap();
        assert_eq!(
            (db.max_surge, db.max_unavailable),
            (
                Some(IntOrString::Int(0)),
                Some(IntOrString::String("100%".into()))
            )
        );
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("rollout undo"), "{:?}", f.warnings);
    }

    #[test]
    fn every_metric_maps_to_an_autoscaler() {
        for (metric, kind, name, value) in [
            ("cpu", "Resource", "cpu", "350m"),
            ("rps", "Pods", RPS_METRIC, "150"),
            ("concurrency", "Pods", CONCURRENCY_METRIC, "150"),
            ("latency_p95", "Pods", LATENCY_METRIC, "150"),
        ] {
            let target = if metric == "cpu" { 70 } else { 150 };
            let l = load(&format!(
                "services:\n  web:\n    image: w\n    deploy:\n      resources: {{limits: {{cpus: '0.5'}}}}\n    x-shoal:\n      autoscale: {{min: 2, max: 9, metric: {metric}, target: {target}, scale_down_delay: 45s}}\n"
            ));
            let mut f = Findings {
                loaded: &l,
                warnings: Vec::new(),
            };
            let svc = &l.project.services["web"];
            let hpa = autoscaler(&l.project, svc, Workload::Deployment, &mut f).unwrap();
            let spec = hpa.spec.unwrap();
            assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 9));
            assert_eq!(spec.scale_target_ref.kind, "Deployment");
            let m = &spec.metrics.unwrap()[0];
            assert_eq!(m.type_, kind);
            let (got_name, target) = match kind {
                "Resource" => {
                    let r = m.resource.as_ref().unwrap();
                    (r.name.clone(), r.target.clone())
                }
                _ => {
                    let p = m.pods.as_ref().unwrap();
                    (p.metric.name.clone(), p.target.clone())
                }
            };
            assert_eq!(got_name, name);
            assert_eq!(
                target.average_value,
                Some(Quantity(value.into())),
                "{metric}"
            );
            let down = spec.behavior.unwrap().scale_down.unwrap();
            assert_eq!(down.stabilization_window_seconds, Some(45));
            // A request metric needs an adapter: the user is told which name.
            assert_eq!(
                f.warnings.len(),
                usize::from(metric != "cpu"),
                "{:?}",
                f.warnings
            );
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(millicores(0.5), "500m");
        assert_eq!(millicores(2.0), "2");
        assert_eq!(quantity(12.5), "12500m");
        assert_eq!(quantity(100.0), "100");
    }
}
