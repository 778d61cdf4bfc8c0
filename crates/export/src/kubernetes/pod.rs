//! A service's pod: its container, the containers that wait for its dependencies, its
//! volumes, and what of the service has no place in a pod.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvFromSource, HostAlias, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use shoal_spec::{
    Condition, FileObject, Limits, MountKind, Project, Restart, RestartCondition, Service,
};

use super::names::{dns_label, seconds};
use super::probes::probes;
use super::scaling::millicores;
use super::{claim_spec, labels, service_ports, Error, Findings, Workload};

/// The image that waits for a dependency: it has `sh`, `nc` and `nslookup`.
pub const WAIT_IMAGE: &str = "busybox:1.37";

/// Keys of a service that the pod carries; every other engine key is reported.
const MAPPED: &[&str] = &[
    "privileged",
    "cap_add",
    "cap_drop",
    "read_only",
    "tty",
    "stdin_open",
    "extra_hosts",
];

/// A pod template, and the claims a StatefulSet makes for each pod.
pub struct PodParts {
    pub template: PodTemplateSpec,
    pub claims: Vec<PersistentVolumeClaim>,
}

pub fn template(
    project: &Project,
    svc: &Service,
    kind: Workload,
    users: &IndexMap<&str, Vec<&str>>,
    f: &mut Findings<'_>,
) -> PodParts {
    let at = |key: &str| format!("services.{}.{key}", svc.name);
    let name = dns_label(&svc.name);
    if svc.build.is_some() {
        f.warn(
            &at("build"),
            format!(
                "built here as `{}`: push it to a registry the cluster pulls from",
                svc.image
            ),
        );
    }
    if let Some(mode) = &svc.network_mode {
        f.warn(
            &at("network_mode"),
            format!("`network_mode: {mode}` has no Kubernetes equivalent: left out"),
        );
    }
    if svc.container_name.is_some() {
        f.warn(
            &at("container_name"),
            "pods are named by their workload: `container_name` is left out",
        );
    }
    if let Some(signal) = &svc.stop_signal {
        f.warn(
            &at("stop_signal"),
            format!("pods are stopped with SIGTERM: `{signal}` is not sent"),
        );
    }
    if svc.x_shoal.lb.is_some() {
        f.warn(
            &at("x-shoal.lb"),
            "the Service balances with kube-proxy: shoal's strategy, retries and ejection do not carry over",
        );
    }
    let never_again = match (&svc.restart, &svc.deploy.restart_policy) {
        (_, Some(p)) => p.condition != RestartCondition::Any,
        (Some(r), None) => matches!(r, Restart::No | Restart::OnFailure(_)),
        (None, None) => false,
    };
    if never_again && kind != Workload::DaemonSet {
        f.warn(
            &at("restart"),
            "a workload's pods are always restarted: run a one-off task as a Job",
        );
    }
    for (net, n) in &svc.networks {
        if !n.aliases.is_empty() {
            f.warn(
                &at(&format!("networks.{net}.aliases")),
                "aliases have no Kubernetes equivalent: other pods reach this one by its Service's name",
            );
        }
    }
    for key in svc.other.keys() {
        if !MAPPED.contains(&key.as_str()) {
            f.warn(
                &at(key),
                format!("`{key}` has no Kubernetes equivalent here: left out"),
            );
        }
    }

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut claims = Vec::new();
    for (i, m) in svc.volumes.iter().enumerate() {
        let path = at(&format!("volumes[{i}]"));
        let mount_name = format!("v{i}");
        let source = match (m.kind, m.source.as_deref()) {
            (MountKind::Volume, Some(key)) => {
                let vol = project.volumes.get(key);
                let external = vol.is_some_and(|v| v.external);
                let shared = users.get(key).is_some_and(|u| u.len() > 1);
                if external {
                    let claim = dns_label(vol.map(|v| v.name.as_str()).unwrap_or(key));
                    f.warn(
                        &path,
                        format!("volume `{key}` is external: a claim named `{claim}` must exist"),
                    );
                    Some(claim_volume(&claim))
                } else if shared {
                    Some(claim_volume(&dns_label(key)))
                } else if kind == Workload::StatefulSet {
                    let claim = dns_label(key);
                    claims.push(PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(claim.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(claim_spec("ReadWriteOnce")),
                        ..PersistentVolumeClaim::default()
                    });
                    mounts.push(VolumeMount {
                        name: claim,
                        mount_path: m.target.clone(),
                        read_only: m.read_only.then_some(true),
                        ..VolumeMount::default()
                    });
                    continue;
                } else {
                    f.warn(&path, "a global service's volume has no claim per node here: an emptyDir stands in");
                    Some(empty_dir(None))
                }
            }
            (MountKind::Volume, None) => Some(empty_dir(None)),
            (MountKind::Tmpfs, _) => Some(empty_dir(Some("Memory"))),
            (MountKind::Bind, src) => {
                // As written: relative to the project when it is below it.
                let src = std::path::Path::new(src.unwrap_or_default());
                let shown = match src.strip_prefix(&project.dir) {
                    Ok(rel) => format!("./{}", rel.display()),
                    Err(_) => src.display().to_string(),
                };
                f.warn(
                    &path,
                    format!("a bind mount of the host's `{shown}` has no place on a cluster's nodes: left out"),
                );
                None
            }
            (MountKind::Image | MountKind::Cluster | MountKind::Npipe, _) => {
                f.warn(
                    &path,
                    "this mount type has no Kubernetes equivalent here: left out",
                );
                None
            }
        };
        if let Some(source) = source {
            volumes.push(Volume {
                name: mount_name.clone(),
                ..source
            });
            mounts.push(VolumeMount {
                name: mount_name,
                mount_path: m.target.clone(),
                read_only: m.read_only.then_some(true),
                ..VolumeMount::default()
            });
        }
    }
    for (refs, objects, secret) in [
        (&svc.secrets, &project.secrets, true),
        (&svc.configs, &project.configs, false),
    ] {
        for (i, r) in refs.iter().enumerate() {
            let Some(obj) = objects.get(&r.source) else {
                continue;
            };
            let volume_name = format!("{}{i}", if secret { "secret" } else { "config" });
            let object = dns_label(&r.source);
            volumes.push(if secret {
                Volume {
                    name: volume_name.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(object),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                }
            } else {
                Volume {
                    name: volume_name.clone(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: object,
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                }
            });
            mounts.push(VolumeMount {
                name: volume_name,
                mount_path: r.target.clone(),
                sub_path: Some(file_key(&r.source, obj)),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }

    let mut security = SecurityContext::default();
    let flag = |key: &str| svc.other.get(key).and_then(Value::as_bool).unwrap_or(false);
    if flag("privileged") {
        f.warn(&at("privileged"), "a privileged pod is refused where the namespace enforces the baseline or restricted Pod Security Standard");
        security.privileged = Some(true);
    }
    let caps = |key: &str| -> Option<Vec<String>> {
        let list: Vec<String> = svc
            .other
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(|c| c.trim_start_matches("CAP_").to_string())
            .collect();
        (!list.is_empty()).then_some(list)
    };
    if let (add @ Some(_), drop) | (add, drop @ Some(_)) = (caps("cap_add"), caps("cap_drop")) {
        security.capabilities = Some(Capabilities { add, drop });
    }
    if flag("read_only") {
        security.read_only_root_filesystem = Some(true);
    }
    if let Some(user) = &svc.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
        match (uid.parse::<i64>(), gid) {
            (Ok(uid), "") => security.run_as_user = Some(uid),
            (Ok(uid), gid) if gid.parse::<i64>().is_ok() => {
                security.run_as_user = Some(uid);
                security.run_as_group = gid.parse().ok();
            }
            _ => f.warn(
                &at("user"),
                format!("Kubernetes runs as a numeric user id: `{user}` is left to the image"),
            ),
        }
    }
    let host_aliases = extra_hosts(svc, f);

    let p = probes(svc, f);
    let has_env = svc.environment.values().any(Option::is_some);
    let container = Container {
        name: name.clone(),
        image: Some(svc.image.clone()),
        command: svc.entrypoint.clone(),
        args: svc.command.clone(),
        env_from: has_env.then(|| {
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: format!("{name}-env"),
                    ..ConfigMapEnvSource::default()
                }),
                ..EnvFromSource::default()
            }]
        }),
        ports: container_ports(svc),
        resources: resources(
            &svc.deploy.resources.limits,
            &svc.deploy.resources.reservations,
        ),
        liveness_probe: p.liveness,
        readiness_probe: p.readiness,
        startup_probe: p.startup,
        security_context: (security != SecurityContext::default()).then_some(security),
        working_dir: svc.working_dir.clone(),
        tty: flag("tty").then_some(true),
        stdin: flag("stdin_open").then_some(true),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };

    let init: Vec<Container> = svc
        .depends_on
        .iter()
        .filter_map(|(dep, d)| {
            let target = project.services.get(dep)?;
            if d.condition == Condition::ServiceCompletedSuccessfully {
                f.warn(
                    &at(&format!("depends_on.{dep}")),
                    "Kubernetes cannot wait for a workload to complete: run it as a Job; the pod waits only for its Service",
                );
            }
            let host = dns_label(dep);
            let wait = match service_ports(target).0.first() {
                Some(port) => format!(
                    "until nc -z -w 1 {host} {}; do echo waiting for {host}; sleep 1; done",
                    port.port
                ),
                None => format!("until nslookup {host}; do echo waiting for {host}; sleep 1; done"),
            };
            Some(Container {
                name: format!("wait-for-{host}"),
                image: Some(WAIT_IMAGE.into()),
                command: Some(vec!["sh".into(), "-c".into(), wait]),
                ..Container::default()
            })
        })
        .collect();

    let mut pod_labels = labels(project, svc);
    pod_labels.remove("app.kubernetes.io/managed-by");
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!svc.labels.is_empty()).then(|| {
                svc.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            init_containers: (!init.is_empty()).then_some(init),
            volumes: (!volumes.is_empty()).then_some(volumes),
            termination_grace_period_seconds: svc.stop_grace_period.map(|d| i64::from(seconds(d))),
            hostname: svc.hostname.as_deref().map(dns_label),
            host_aliases,
            ..PodSpec::default()
        }),
    };
    PodParts { template, claims }
}

fn claim_volume(claim: &str) -> Volume {
    Volume {
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_string(),
            read_only: None,
        }),
        ..Volume::default()
    }
}

fn empty_dir(medium: Option<&str>) -> Volume {
    Volume {
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(String::from),
            size_limit: None,
        }),
        ..Volume::default()
    }
}

fn container_ports(svc: &Service) -> Option<Vec<ContainerPort>> {
    let mut ports: Vec<ContainerPort> = Vec::new();
    let targets = svc
        .ports
        .iter()
        .map(|p| (p.target, p.protocol.as_str()))
        .chain(svc.exposed_ports());
    for (port, protocol) in targets {
        let protocol = protocol.to_ascii_uppercase();
        let port = i32::from(port);
        if !ports
            .iter()
            .any(|p| p.container_port == port && p.protocol.as_deref() == Some(&protocol))
        {
            ports.push(ContainerPort {
                container_port: port,
                protocol: Some(protocol),
                ..ContainerPort::default()
            });
        }
    }
    (!ports.is_empty()).then_some(ports)
}

fn resources(limits: &Limits, reservations: &Limits) -> Option<ResourceRequirements> {
    let of = |l: &Limits| {
        let mut m = BTreeMap::new();
        if let Some(c) = l.cpus {
            m.insert("cpu".to_string(), Quantity(millicores(c)));
        }
        if let Some(b) = l.memory {
            m.insert("memory".to_string(), Quantity(bytes(b)));
        }
        (!m.is_empty()).then_some(m)
    };
    let (limits, requests) = (of(limits), of(reservations));
    (limits.is_some() || requests.is_some()).then(|| ResourceRequirements {
        limits,
        requests,
        ..ResourceRequirements::default()
    })
}

/// A byte count as Kubernetes writes it: `512Mi`, `1Gi`, or bytes.
fn bytes(b: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if b >= size && b % size == 0 {
            return format!("{}{unit}", b / size);
        }
    }
    b.to_string()
}

/// `extra_hosts` as host aliases, grouped by address.
fn extra_hosts(svc: &Service, f: &mut Findings<'_>) -> Option<Vec<HostAlias>> {
    let entries: Vec<(String, String)> = match svc.other.get("extra_hosts")? {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|e| {
                let (host, ip) = e.split_once(['=', ':'])?;
                Some((host.to_string(), ip.to_string()))
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(host, ips)| {
                let ips: Vec<String> = match ips {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                };
                ips.into_iter().map(move |ip| (host.clone(), ip))
            })
            .collect(),
        _ => return None,
    };
    let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, ip) in entries {
        if ip == "host-gateway" {
            f.warn(
                &format!("services.{}.extra_hosts", svc.name),
                format!("`{host}` points at the Docker host, which a cluster has not: left out"),
            );
            continue;
        }
        by_ip.entry(ip).or_default().push(host);
    }
    let aliases: Vec<HostAlias> = by_ip
        .into_iter()
        .map(|(ip, hostnames)| HostAlias {
            ip,
            hostnames: Some(hostnames),
        })
        .collect();
    (!aliases.is_empty()).then_some(aliases)
}

/// The ConfigMap of a service's environment (`env_file`s and `environment`), which
/// its container reads whole.
pub fn env_config_map(project: &Project, svc: &Service, f: &mut Findings<'_>) -> Option<ConfigMap> {
    let mut data = BTreeMap::new();
    for (k, v) in &svc.environment {
        match v {
            Some(v) => {
                data.insert(k.clone(), v.clone());
            }
            None => f.warn(
                &format!("services.{}.environment", svc.name),
                format!("`{k}` comes from the shell and is not set there: left out"),
            ),
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{}-env", dns_label(&svc.name))),
            labels: Some(labels(project, svc)),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// The key a config or secret's content has in its ConfigMap or Secret: the file's
/// name, else the object's.
pub fn file_key(key: &str, obj: &FileObject) -> String {
    obj.file
        .as_deref()
        .and_then(|f| std::path::Path::new(f).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| key.to_string())
}

/// The content of a config or secret, read now from its file, its inline content or
/// the environment variable it names.
pub fn file_object_content(kind: &str, key: &str, obj: &FileObject) -> Result<Vec<u8>, Error> {
    let what = format!("{kind}.{key}");
    if let Some(file) = &obj.file {
        return std::fs::read(file).map_err(|e| Error::Source {
            what,
            why: format!("cannot read {file}: {e}"),
        });
    }
    if let Some(content) = &obj.content {
        return Ok(content.clone().into_bytes());
    }
    if let Some(var) = &obj.environment {
        return std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| Error::Source {
                what,
                why: format!("the variable {var} it comes from is not set"),
            });
    }
    Ok(Vec::new())
}
