//! What a replica's container should be: made from the project and the service, and
//! handed to a [`crate::Runtime`].

use std::collections::HashMap;
use std::time::Duration;

use shoal_spec::{Healthcheck, MountKind, Project, Service};

use crate::{LABEL_CONFIG_HASH, LABEL_PROJECT, LABEL_REPLICA, LABEL_SERVICE, LABEL_STOP_GRACE};

/// Everything needed to create one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Labels, shoal's included.
    pub labels: HashMap<String, String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// Overrides CMD.
    pub command: Option<Vec<String>>,
    /// Overrides ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Networks (engine-side names) with the aliases on each; the first is joined at
    /// creation, the others right after.
    pub networks: Vec<(String, Vec<String>)>,
    /// `host`, `none`, `container:<id>`: replaces `networks`.
    pub network_mode: Option<String>,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Container ports the image listens on (`80/tcp`).
    pub exposed: Vec<String>,
    /// The engine-run healthcheck.
    pub healthcheck: Option<Healthcheck>,
    /// Signal that asks the container to stop.
    pub stop_signal: Option<String>,
    /// Time between the stop signal and SIGKILL.
    pub stop_grace: Duration,
    /// CPU limit.
    pub cpus: Option<f64>,
    /// Memory limit, bytes.
    pub memory: Option<u64>,
    /// Process limit.
    pub pids: Option<i64>,
    /// Engine options from [`shoal_spec::ENGINE_KEYS`], as written.
    pub engine: HashMap<String, serde_json::Value>,
}

/// One mount, with engine-side names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// Volume, bind or tmpfs.
    pub kind: MountKind,
    /// Volume name or host path.
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// The default grace period, as Compose and the engine have it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl ContainerSpec {
    /// The container for replica `replica` (1-based) of `service`.
    pub fn for_replica(project: &Project, service: &Service, replica: u32) -> ContainerSpec {
        let name = replica_name(&project.name, service, replica);
        let mut labels: HashMap<String, String> = service
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_PROJECT.into(), project.name.clone());
        labels.insert(LABEL_SERVICE.into(), service.name.clone());
        labels.insert(LABEL_REPLICA.into(), replica.to_string());
        labels.insert(LABEL_CONFIG_HASH.into(), service.config_hash());
        labels.insert(
            LABEL_STOP_GRACE.into(),
            service
                .stop_grace_period
                .unwrap_or(DEFAULT_GRACE)
                .as_secs()
                .to_string(),
        );

        let env = service
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();

        let networks = service
            .networks
            .iter()
            .map(|(key, sn)| {
                let name = project
                    .networks
                    .get(key)
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| format!("{}_{key}", project.name));
                let mut aliases = vec![service.name.clone()];
                aliases.extend(sn.aliases.iter().cloned());
                (name, aliases)
            })
            .collect();

        let mut mounts: Vec<MountSpec> = service
            .volumes
            .iter()
            .map(|m| MountSpec {
                kind: m.kind,
                source: match (m.kind, &m.source) {
                    (MountKind::Volume, Some(key)) => Some(
                        project
                            .volumes
                            .get(key)
                            .map(|v| v.name.clone())
                            .unwrap_or_else(|| key.clone()),
                    ),
                    (_, source) => source.clone(),
                },
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect();
        for (refs, objects) in [
            (&service.secrets, &project.secrets),
            (&service.configs, &project.configs),
        ] {
            for r in refs {
                if let Some(file) = objects.get(&r.source).and_then(|o| o.file.clone()) {
                    mounts.push(MountSpec {
                        kind: MountKind::Bind,
                        source: Some(file),
                        target: r.target.clone(),
                        read_only: true,
                    });
                }
            }
        }

        let mut exposed: Vec<String> = service
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.target, p.protocol))
            .chain(service.expose.iter().map(|e| {
                if e.contains('/') {
                    e.clone()
                } else {
                    format!("{e}/tcp")
                }
            }))
            .collect();
        exposed.sort();
        exposed.dedup();

        let limits = &service.deploy.resources.limits;
        ContainerSpec {
            name: name.clone(),
            image: service.image.clone(),
            labels,
            env,
            command: service.command.clone(),
            entrypoint: service.entrypoint.clone(),
            user: service.user.clone(),
            working_dir: service.working_dir.clone(),
            // Like a pod's, a replica's host name is its name: `X-Replica`-style
            // answers and logs then say which replica spoke.
            hostname: service
                .hostname
                .clone()
                .or_else(|| (spec_name_fits(&name)).then(|| name.clone())),
            networks,
            network_mode: service.network_mode.clone(),
            mounts,
            exposed,
            healthcheck: service.healthcheck.clone(),
            stop_signal: service.stop_signal.clone(),
            stop_grace: service.stop_grace_period.unwrap_or(DEFAULT_GRACE),
            cpus: limits.cpus,
            memory: limits.memory,
            pids: limits.pids,
            engine: service
                .other
                .iter()
                .filter(|(k, _)| shoal_spec::ENGINE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// The name replica `replica` of `service` goes by: its `container_name`, else
/// [`container_name`].
pub fn replica_name(project: &str, service: &Service, replica: u32) -> String {
    service
        .container_name
        .clone()
        .unwrap_or_else(|| container_name(project, &service.name, replica))
}

/// `<project>-<service>-<replica>`, as Compose names containers.
pub fn container_name(project: &str, service: &str, replica: u32) -> String {
    format!("{project}-{service}-{replica}")
}

/// Host names are at most 63 characters.
fn spec_name_fits(name: &str) -> bool {
    name.len() <= 63
}
