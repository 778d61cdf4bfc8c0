//! `shoal export kubernetes`: a Compose project as Kubernetes manifests.
//!
//! Per service: a Deployment (a StatefulSet when it has a named volume of its own, a
//! DaemonSet for `deploy.mode: global`), a Service named as the compose service so its
//! name keeps resolving, a ConfigMap of its environment, and a HorizontalPodAutoscaler
//! from `x-shoal.autoscale`. Per project: ConfigMaps and Secrets from `configs` and
//! `secrets`, PersistentVolumeClaims for volumes several services share. The
//! objects come out in a stable order: by kind, then by name.

mod names;
mod pod;
mod probes;
mod scaling;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, Service as KService,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use serde_json::Value;
use shoal_spec::{Loaded, MountKind, Project, Service};

pub use names::dns_label;

/// The size asked for each volume claim: Compose has no word for it.
pub const VOLUME_SIZE: &str = "1Gi";

/// How the Services of published ports are exposed outside the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exposure {
    /// A cloud load balancer per service (`type: LoadBalancer`).
    #[default]
    LoadBalancer,
    /// A port on every node (`type: NodePort`).
    NodePort,
}

/// What to export, and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The services to export; all of them when empty.
    pub services: Vec<String>,
    /// `metadata.namespace` of every object, when set.
    pub namespace: Option<String>,
    /// How published ports are exposed.
    pub exposure: Exposure,
}

/// The manifests of a project.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Each object, in a stable order, with the file name it is written to.
    pub objects: Vec<Manifest>,
    /// What did not carry over, each `file:line:col: path: what`.
    pub warnings: Vec<String>,
}

/// One Kubernetes object.
#[derive(Debug)]
pub struct Manifest {
    /// `<name>-<kind>.yaml`.
    pub file: String,
    /// The object, as the API takes it.
    pub object: Value,
}

impl Manifests {
    /// Every object as one YAML stream, `---` between them.
    pub fn to_yaml(&self) -> String {
        self.objects
            .iter()
            .map(|m| shoal_spec::output::yaml(&m.object))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// Why a project cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service named on the command line is not in the project.
    #[error("no such service: {name}\n  hint: the project's services are {known}")]
    UnknownService {
        /// The name given.
        name: String,
        /// The services there are.
        known: String,
    },
    /// A secret or config's content could not be read.
    #[error("{what}: {why}")]
    Source {
        /// The object.
        what: String,
        /// What went wrong.
        why: String,
    },
}

/// Findings about what does not carry over, located where the compose file says it.
pub(crate) struct Findings<'a> {
    loaded: &'a Loaded,
    warnings: Vec<String>,
}

impl Findings<'_> {
    /// A warning about the node at `path` (`services.web.network_mode`).
    pub fn warn(&mut self, path: &str, what: impl std::fmt::Display) {
        let at = self.loaded.at(path);
        self.warnings.push(format!("{at}: {path}: {what}"));
    }
}

/// The labels of a project-wide object (a config, a secret, a shared claim).
fn project_labels(project: &Project) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/part-of".to_string(),
            dns_label(&project.name),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "shoal".to_string(),
        ),
    ])
}

/// The labels every object of a service carries; name and part-of select its pods.
pub(crate) fn labels(project: &Project, svc: &Service) -> BTreeMap<String, String> {
    let mut l = project_labels(project);
    l.insert("app.kubernetes.io/name".to_string(), dns_label(&svc.name));
    l
}

fn selector(project: &Project, svc: &Service) -> LabelSelector {
    let mut l = labels(project, svc);
    l.remove("app.kubernetes.io/managed-by");
    LabelSelector {
        match_labels: Some(l),
        ..LabelSelector::default()
    }
}

/// Which workload a service becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    Deployment,
    /// With a claim per pod for each of its own named volumes.
    StatefulSet,
    /// One pod per node (`deploy.mode: global`).
    DaemonSet,
}

impl Workload {
    pub fn kind(self) -> &'static str {
        match self {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
        }
    }
}

/// The named volumes each volume key is mounted by, across the whole project.
fn volume_users(project: &Project) -> IndexMap<&str, Vec<&str>> {
    let mut users: IndexMap<&str, Vec<&str>> = IndexMap::new();
    for svc in project.services.values() {
        for m in &svc.volumes {
            if let (MountKind::Volume, Some(src)) = (m.kind, &m.source) {
                let list = users.entry(src.as_str()).or_default();
                if !list.contains(&svc.name.as_str()) {
                    list.push(&svc.name);
                }
            }
        }
    }
    users
}

fn workload(project: &Project, svc: &Service, users: &IndexMap<&str, Vec<&str>>) -> Workload {
    if svc.deploy.other.get("mode").and_then(Value::as_str) == Some("global") {
        return Workload::DaemonSet;
    }
    let own_volume = svc.volumes.iter().any(|m| {
        m.kind == MountKind::Volume
            && m.source.as_deref().is_some_and(|src| {
                users.get(src).is_some_and(|u| u.len() == 1)
                    && project.volumes.get(src).is_some_and(|v| !v.external)
            })
    });
    if own_volume {
        Workload::StatefulSet
    } else {
        Workload::Deployment
    }
}

/// The manifests of `loaded`'s project.
pub fn export(loaded: &Loaded, opts: &Options) -> Result<Manifests, Error> {
    let project = &loaded.project;
    for name in &opts.services {
        if !project.services.contains_key(name) {
            return Err(Error::UnknownService {
                name: name.clone(),
                known: project
                    .services
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let chosen: Vec<&Service> = project
        .services
        .values()
        .filter(|s| opts.services.is_empty() || opts.services.contains(&s.name))
        .collect();
    let mut f = Findings {
        loaded,
        warnings: Vec::new(),
    };
    let users = volume_users(project);
    // Each object with its place: by kind, then by name.
    let mut objects: Vec<(u8, Value)> = Vec::new();
    let mut push = |order: u8, object: Value| objects.push((order, object));

    for svc in &chosen {
        let kind = workload(project, svc, &users);
        let spec = pod::template(project, svc, kind, &users, &mut f);
        let name = dns_label(&svc.name);
        if name != svc.name {
            f.warn(
                &format!("services.{}", svc.name),
                format!(
                    "`{}` is not a DNS name: its objects are named `{name}`",
                    svc.name
                ),
            );
        }
        if let Some(env) = pod::env_config_map(project, svc, &mut f) {
            push(0, to_value(&env));
        }
        push(3, to_value(&service(project, svc, opts.exposure)));
        let hpa = scaling::autoscaler(project, svc, kind, &mut f);
        let replicas =
            (hpa.is_none()).then(|| i32::try_from(svc.deploy.replicas).unwrap_or(i32::MAX));
        let meta = ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(project, svc)),
            ..ObjectMeta::default()
        };
        let workload = match kind {
            Workload::Deployment => to_value(&Deployment {
                metadata: meta,
                spec: Some(DeploymentSpec {
                    replicas,
                    selector: selector(project, svc),
                    strategy: Some(scaling::deployment_strategy(svc, &mut f)),
                    min_ready_seconds: scaling::min_ready_seconds(svc),
                    progress_deadline_seconds: scaling::progress_deadline(svc),
                    template: spec.template,
                    ..DeploymentSpec::default()
                }),
                ..Deployment::default()
            }),
            Workload::StatefulSet => to_value(&StatefulSet {
                metadata: meta,
                spec: Some(StatefulSetSpec {
                    replicas,
                    selector: selector(project, svc),
                    service_name: Some(name.clone()),
                    min_ready_seconds: scaling::min_ready_seconds(svc),
                    template: spec.template,
                    volume_claim_templates: Some(spec.claims),
                    ..StatefulSetSpec::default()
                }),
                ..StatefulSet::default()
            }),
            Workload::DaemonSet => to_value(&DaemonSet {
                metadata: meta,
                spec: Some(DaemonSetSpec {
                    selector: selector(project, svc),
                    min_ready_seconds: scaling::min_ready_seconds(svc),
                    template: spec.template,
                    ..DaemonSetSpec::default()
                }),
                ..DaemonSet::default()
            }),
        };
        push(4, workload);
        if let Some(hpa) = hpa {
            push(5, to_value(&hpa));
        }
    }

    // Volumes several exported services share: one claim, mounted by each.
    for (key, services) in &users {
        if services.len() < 2 || !chosen.iter().any(|s| services.contains(&s.name.as_str())) {
            continue;
        }
        let Some(vol) = project.volumes.get(*key) else {
            continue;
        };
        if vol.external {
            f.warn(
                &format!("services.{}.volumes", services[0]),
                format!(
                    "volume `{key}` is external: a claim named `{}` must exist",
                    dns_label(&vol.name)
                ),
            );
            continue;
        }
        f.warn(
            &format!("services.{}.volumes", services[0]),
            format!(
                "volume `{key}` is shared by {}: its claim asks for ReadWriteMany, which the storage class must offer",
                services.join(", ")
            ),
        );
        push(2, to_value(&claim(project, key, "ReadWriteMany")));
    }

    for (kind, objects_of, secret) in [
        ("configs", &project.configs, false),
        ("secrets", &project.secrets, true),
    ] {
        for (key, obj) in objects_of {
            let used = chosen.iter().any(|s| {
                let refs = if secret { &s.secrets } else { &s.configs };
                refs.iter().any(|r| &r.source == key)
            });
            if !used {
                continue;
            }
            if obj.external {
                f.warn(
                    &format!("services.{}", chosen[0].name),
                    format!(
                        "{kind} `{key}` is external: it must exist in the namespace as `{}`",
                        dns_label(key)
                    ),
                );
                continue;
            }
            let content = pod::file_object_content(kind, key, obj)?;
            let data_key = pod::file_key(key, obj);
            let meta = ObjectMeta {
                name: Some(dns_label(key)),
                labels: Some(project_labels(project)),
                ..ObjectMeta::default()
            };
            if secret {
                push(
                    1,
                    to_value(&Secret {
                        metadata: meta,
                        type_: Some("Opaque".into()),
                        data: Some(BTreeMap::from([(data_key, ByteString(content))])),
                        ..Secret::default()
                    }),
                );
            } else {
                push(
                    0,
                    to_value(&ConfigMap {
                        metadata: meta,
                        data: Some(BTreeMap::from([(
                            data_key,
                            String::from_utf8_lossy(&content).into_owned(),
                        )])),
                        ..ConfigMap::default()
                    }),
                );
            }
        }
    }

    if project.networks.len() > 1 {
        let first = chosen.first().map(|s| s.name.as_str()).unwrap_or_default();
        f.warn(
            &format!("services.{first}.networks"),
            "Kubernetes pods share one network: the project's networks do not isolate its services there (a NetworkPolicy can)",
        );
    }

    let name_of = |o: &Value| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    objects.sort_by_key(|(order, o)| (*order, name_of(o)));
    let objects = objects
        .into_iter()
        .map(|(_, mut object)| {
            let name = name_of(&object);
            if let Some(ns) = &opts.namespace {
                object["metadata"]["namespace"] = Value::String(ns.clone());
            }
            let kind = object["kind"]
                .as_str()
                .unwrap_or("object")
                .to_ascii_lowercase();
            Manifest {
                file: format!("{name}-{kind}.yaml"),
                object,
            }
        })
        .collect();
    Ok(Manifests {
        objects,
        warnings: f.warnings,
    })
}

/// The object as JSON, `apiVersion` and `kind` first, as manifests are written.
fn to_value<T: serde::Serialize>(object: &T) -> Value {
    let v = serde_json::to_value(object).expect("Kubernetes objects serialize");
    let Value::Object(mut map) = v else { return v };
    let mut out = serde_json::Map::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_string(), v);
        }
    }
    out.extend(map);
    Value::Object(out)
}

/// A claim for a volume.
fn claim(project: &Project, key: &str, access: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(dns_label(key)),
            labels: Some(project_labels(project)),
            ..ObjectMeta::default()
        },
        spec: Some(claim_spec(access)),
        ..PersistentVolumeClaim::default()
    }
}

pub(crate) fn claim_spec(access: &str) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access.to_string()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(VOLUME_SIZE.into()),
            )])),
            ..VolumeResourceRequirements::default()
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// The ports of a service's Service: each published port as itself (forwarding to
/// its container port), each other port as the container port; and whether any is
/// published.
pub(crate) fn service_ports(svc: &Service) -> (Vec<ServicePort>, bool) {
    let mut ports: Vec<ServicePort> = Vec::new();
    let mut add = |port: u16, target: u16, protocol: &str| {
        let protocol = protocol.to_ascii_uppercase();
        if ports
            .iter()
            .any(|p| p.port == i32::from(port) && p.protocol.as_deref() == Some(protocol.as_str()))
        {
            return;
        }
        ports.push(ServicePort {
            name: Some(format!("{}-{port}", protocol.to_ascii_lowercase())),
            port: i32::from(port),
            target_port: Some(IntOrString::Int(i32::from(target))),
            protocol: Some(protocol),
            ..ServicePort::default()
        });
    };
    let mut published = false;
    for p in &svc.ports {
        match p.published_port() {
            Some(host) => {
                published = true;
                add(host, p.target, &p.protocol);
            }
            None => add(p.target, p.target, &p.protocol),
        }
    }
    for (port, protocol) in svc.exposed_ports() {
        add(port, port, protocol);
    }
    (ports, published)
}

/// The Service that keeps the compose service's name resolving: its published ports
/// exposed outside the cluster, its other ports inside; headless when it has none.
fn service(project: &Project, svc: &Service, exposure: Exposure) -> KService {
    let (ports, published) = service_ports(svc);
    let headless = ports.is_empty();
    KService {
        metadata: ObjectMeta {
            name: Some(dns_label(&svc.name)),
            labels: Some(labels(project, svc)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(
                match (published, exposure) {
                    (false, _) => "ClusterIP",
                    (true, Exposure::LoadBalancer) => "LoadBalancer",
                    (true, Exposure::NodePort) => "NodePort",
                }
                .into(),
            ),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: selector(project, svc).match_labels,
            ports: (!headless).then_some(ports),
            ..ServiceSpec::default()
        }),
        ..KService::default()
    }
}

#[cfg(test)]
mod tests;
