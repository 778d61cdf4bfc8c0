//! The typed, normalized project: what the loader hands to the rest of shoal.
//!
//! Serializes to the same shape `docker compose config` prints, so `shoal config` is
//! this model written out.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A closed vocabulary of a Compose (or `x-shoal`) key: an enum whose variants are
/// written as fixed words, parsed and printed by them, so that every use of it is an
/// exhaustive match.
pub trait Words: Sized + Copy + 'static {
    /// Every word, in the order the documentation lists them.
    const WORDS: &'static [&'static str];
    /// The variant a word names.
    fn parse(word: &str) -> Option<Self>;
    /// The word of a variant.
    fn as_str(self) -> &'static str;
}

macro_rules! words {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl Words for $name {
            const WORDS: &'static [&'static str] = &[$($word),+];
            fn parse(word: &str) -> Option<$name> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let word = String::deserialize(d)?;
                $name::parse(&word).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} `{word}`, expected one of {}",
                        stringify!($name),
                        <$name as Words>::WORDS.join(", ")
                    ))
                })
            }
        }
    };
}

/// A loaded, validated Compose project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    /// The project name (labels, resource names).
    pub name: String,
    /// Where relative paths were resolved from.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Enabled services, in file order.
    pub services: IndexMap<String, Service>,
    /// Networks used by the services, `default` included when used.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub networks: IndexMap<String, Network>,
    /// Named volumes.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub volumes: IndexMap<String, Volume>,
    /// File-based secrets.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub secrets: IndexMap<String, FileObject>,
    /// File-based configs.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub configs: IndexMap<String, FileObject>,
    /// Project-wide shoal settings (the top-level `x-shoal`).
    #[serde(
        rename = "x-shoal",
        skip_serializing_if = "ProjectXShoal::is_empty",
        default
    )]
    pub x_shoal: ProjectXShoal,
}

/// The top-level `x-shoal` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectXShoal {
    /// `x-shoal.metrics`: where the Prometheus endpoint listens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metrics: Option<MetricsAt>,
    /// `x-shoal.logs`: how much of the replicas' output is kept, and where it is sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logs: Option<LogsSettings>,
}

impl ProjectXShoal {
    fn is_empty(&self) -> bool {
        self.metrics.is_none() && self.logs.is_none()
    }

    /// The log settings, defaults where unset.
    pub fn logs(&self) -> LogsSettings {
        self.logs.clone().unwrap_or_default()
    }
}

/// The project's `x-shoal.logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsSettings {
    /// The store holds at most this much (plus the segment being written).
    pub max_size: u64,
    /// Lines older than this go (a segment at a time).
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub max_age: Duration,
    /// The store's files are sealed at this size.
    pub segment_size: u64,
    /// Where the lines are sent as well.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub forward: Vec<Forward>,
}

impl Default for LogsSettings {
    /// 512 MiB, seven days, 16 MiB segments, sent nowhere.
    fn default() -> LogsSettings {
        LogsSettings {
            max_size: 512 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_size: 16 << 20,
            forward: Vec::new(),
        }
    }
}

words! {
    /// Where `x-shoal.logs.forward` sends lines.
    pub enum Sink {
        /// Grafana Loki's push API.
        Loki = "loki",
        /// Elasticsearch's (or OpenSearch's) bulk API.
        Elasticsearch = "elasticsearch",
    }
}

/// One entry of `x-shoal.logs.forward`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The kind of receiver.
    #[serde(rename = "type")]
    pub sink: Sink,
    /// Its base URL (`http://loki:3100`, `http://es:9200`).
    pub url: String,
    /// With Elasticsearch: the index or data stream written to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<String>,
}

/// Where `/metrics` is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAt {
    /// Not served.
    Off,
    /// On this address.
    At(std::net::SocketAddr),
}

impl MetricsAt {
    /// `off`, or an `IP:PORT` (`localhost` for 127.0.0.1).
    pub fn parse(s: &str) -> Result<MetricsAt, String> {
        let s = s.trim();
        if s == "off" {
            return Ok(MetricsAt::Off);
        }
        let s2 = s.replace("localhost:", "127.0.0.1:");
        s2.parse()
            .map(MetricsAt::At)
            .map_err(|_| format!("`{s}` is not an address"))
    }
}

impl Serialize for MetricsAt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetricsAt::Off => s.serialize_str("off"),
            MetricsAt::At(a) => s.serialize_str(&a.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for MetricsAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricsAt, D::Error> {
        MetricsAt::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Project {
    /// The project read back from its JSON, with each service's name (its key, not a
    /// field of its own) set again.
    pub fn named(mut self) -> Project {
        for (name, svc) in &mut self.services {
            svc.name = name.clone();
        }
        self
    }
}

/// One service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Service {
    /// The service's name.
    #[serde(skip)]
    pub name: String,
    /// Image to run (for a service with `build`, the image it builds to).
    pub image: String,
    /// How to build the image.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub build: Option<Build>,
    /// Overrides the image's CMD.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<Vec<String>>,
    /// Overrides the image's ENTRYPOINT.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entrypoint: Option<Vec<String>>,
    /// Environment, `env_file`s applied first, then `environment`. `None` passes the
    /// variable through unset.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub environment: IndexMap<String, Option<String>>,
    /// Published ports.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ports: Vec<Port>,
    /// Ports exposed to other services only.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub expose: Vec<String>,
    /// Networks the service joins, with its aliases there.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub networks: IndexMap<String, ServiceNetwork>,
    /// `network_mode` (`host`, `none`, `service:x`, `container:x`); replaces networks.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_mode: Option<String>,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub volumes: Vec<Mount>,
    /// Services this one waits for.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub depends_on: IndexMap<String, Dependency>,
    /// The container healthcheck the engine runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub healthcheck: Option<Healthcheck>,
    /// `restart:` policy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub restart: Option<Restart>,
    /// `deploy:` settings; `deploy.replicas` also carries `scale`.
    pub deploy: Deploy,
    /// Container labels.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub labels: IndexMap<String, String>,
    /// Time between the stop signal and SIGKILL.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_grace_period: Option<Duration>,
    /// Signal that asks the container to stop.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stop_signal: Option<String>,
    /// User the process runs as.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    /// Working directory in the container.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub working_dir: Option<String>,
    /// Host name in the container.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hostname: Option<String>,
    /// Fixed container name (allowed for one replica only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub container_name: Option<String>,
    /// Secrets mounted under /run/secrets.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub secrets: Vec<FileRef>,
    /// Configs mounted into the container.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub configs: Vec<FileRef>,
    /// Profiles the service belongs to.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub profiles: Vec<String>,
    /// Engine options carried as they are written: `cap_add`, `privileged`, `init`, ...
    /// (see [`crate::ENGINE_KEYS`] for those the runtime applies).
    #[serde(flatten)]
    pub other: IndexMap<String, serde_json::Value>,
    /// The service's `x-shoal` settings.
    #[serde(rename = "x-shoal", skip_serializing_if = "XShoal::is_empty", default)]
    pub x_shoal: XShoal,
}

/// A service's `x-shoal` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct XShoal {
    /// `x-shoal.lb`: how the published ports balance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lb: Option<Lb>,
    /// `x-shoal.health`: a probe the control plane runs itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health: Option<Probe>,
    /// `x-shoal.autoscale`: replicas follow measured load.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub autoscale: Option<Autoscale>,
    /// `x-shoal.update`: how a rolling update judges a new replica.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update: Option<Update>,
    /// `x-shoal.logs`: how the service's output is stored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logs: Option<ServiceLogs>,
}

/// A service's `x-shoal.logs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceLogs {
    /// A line matching this regular expression starts a record; the lines after it
    /// that do not are joined to it (a stack trace is one record).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub multiline: Option<String>,
}

/// `x-shoal.update`: what `deploy.update_config` has no word for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// How long a new replica may take to be ready (default: its health check's
    /// start period plus 30 s).
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ready_timeout: Option<Duration>,
    /// Share of a new replica's requests that may fail while it is watched (default
    /// 0.05).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_ratio: Option<f64>,
}

/// `x-shoal.autoscale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autoscale {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// What is measured against the target.
    pub metric: Metric,
    /// Metric per ready replica to aim for.
    pub target: f64,
    /// Window of the stable average.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub stable_window: Duration,
    /// Window of the panic average.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub panic_window: Duration,
    /// How long a lower count must be recommended before replicas go.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub scale_down_delay: Duration,
    /// Relative deviation from the target that changes nothing.
    pub tolerance: f64,
    /// Who decides.
    pub policy: Policy,
}

words! {
    /// `x-shoal.autoscale.metric`.
    pub enum Metric {
        /// In-flight requests per ready replica.
        Concurrency = "concurrency",
        /// Requests per second per ready replica.
        Rps = "rps",
        /// Percent of the replica's CPU limit (one core when unset).
        Cpu = "cpu",
        /// The 95th percentile of latency, in milliseconds.
        LatencyP95 = "latency_p95",
    }
}

impl Metric {
    /// The target when none is set: 10 in flight, 100 rps, 70 % CPU, 200 ms.
    pub fn default_target(self) -> f64 {
        match self {
            Metric::Concurrency => 10.0,
            Metric::Rps => 100.0,
            Metric::Cpu => 70.0,
            Metric::LatencyP95 => 200.0,
        }
    }
}

words! {
    /// `x-shoal.autoscale.policy`.
    pub enum Policy {
        /// shoal's own (the default).
        Shoal = "shoal",
        /// As Kubernetes' HorizontalPodAutoscaler decides with its default windows.
        Hpa = "hpa",
        /// As Knative's autoscaler decides with its default windows.
        Kpa = "kpa",
    }
}

/// `x-shoal.health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// `GET` this path; 2xx and 3xx are healthy. `None` with `tcp: true`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http: Option<String>,
    /// A TCP connect is the check.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tcp: bool,
    /// Port in the container (default: the first published, then exposed port).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    /// Time between probes.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Time one probe may take.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Successes in a row that make a replica ready.
    pub healthy_after: u32,
    /// Failures in a row that make it unhealthy.
    pub unhealthy_after: u32,
    /// Failures in this time after a start do not count.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub start_period: Duration,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            http: None,
            tcp: false,
            port: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: 1,
            unhealthy_after: 3,
            start_period: Duration::ZERO,
        }
    }
}

impl XShoal {
    fn is_empty(&self) -> bool {
        self.lb.is_none()
            && self.health.is_none()
            && self.autoscale.is_none()
            && self.update.is_none()
            && self.logs.is_none()
    }

    /// The balancer settings, defaults where unset.
    pub fn lb(&self) -> Lb {
        self.lb.clone().unwrap_or_default()
    }
}

/// `x-shoal.lb`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lb {
    /// What the balancer speaks on the port.
    pub protocol: Protocol,
    /// How it picks a replica.
    pub strategy: Strategy,
    /// With `hash`: what is hashed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash_on: Option<HashOn>,
    /// Extra attempts for a request that failed safely.
    pub retries: u32,
    /// Whole-request limit.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Connect limit per attempt.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Consecutive failures that eject a replica.
    pub eject_after: u32,
    /// How long a leaving replica may finish what it has in flight.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub drain_timeout: Duration,
}

impl Default for Lb {
    fn default() -> Lb {
        Lb {
            protocol: Protocol::Auto,
            strategy: Strategy::LeastRequest,
            hash_on: None,
            retries: 2,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            eject_after: 5,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

words! {
    /// `x-shoal.lb.protocol`.
    pub enum Protocol {
        /// Look at the first bytes of each connection: HTTP/1.1, HTTP/2 or else TCP.
        Auto = "auto",
        /// HTTP/1.1 or HTTP/2.
        Http = "http",
        /// Bytes, a connection at a time.
        Tcp = "tcp",
    }
}

words! {
    /// `x-shoal.lb.strategy`.
    pub enum Strategy {
        /// The ready replica with the fewest requests in flight, of two drawn at random.
        LeastRequest = "least_request",
        /// Each ready replica in turn.
        RoundRobin = "round_robin",
        /// The replica a key hashes to (`hash_on`), the same one while the set holds.
        Hash = "hash",
    }
}

/// `x-shoal.lb.hash_on`: `client_ip`, `header:<name>` or `cookie:<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// The client's address.
    ClientIp,
    /// A request header, by its name in lower case.
    Header(String),
    /// A cookie, by name.
    Cookie(String),
}

impl HashOn {
    /// Reads `client_ip`, `header:<name>` or `cookie:<name>`.
    pub fn parse(text: &str) -> Option<HashOn> {
        match text.split_once(':') {
            None if text == "client_ip" => Some(HashOn::ClientIp),
            Some(("header", h)) if !h.is_empty() => Some(HashOn::Header(h.to_ascii_lowercase())),
            Some(("cookie", c)) if !c.is_empty() => Some(HashOn::Cookie(c.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Display for HashOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashOn::ClientIp => f.write_str("client_ip"),
            HashOn::Header(h) => write!(f, "header:{h}"),
            HashOn::Cookie(c) => write!(f, "cookie:{c}"),
        }
    }
}

impl Serialize for HashOn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HashOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HashOn, D::Error> {
        let text = String::deserialize(d)?;
        HashOn::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a hash key")))
    }
}

/// `build:`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Build {
    /// The build context, an absolute path (or a URL).
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Build arguments.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub args: IndexMap<String, String>,
    /// Stage to build.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// Labels on the image.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub labels: IndexMap<String, String>,
    /// Other build keys, as written.
    #[serde(flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port inside the container.
    pub target: u16,
    /// Host port, or range `a-b`; `None` lets the system choose.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub published: Option<String>,
    /// Host address to listen on; empty for every address.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub host_ip: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

impl Port {
    /// The single host port this entry publishes, when it names exactly one.
    pub fn published_port(&self) -> Option<u16> {
        self.published.as_deref()?.parse().ok()
    }

    /// The range of host ports this entry claims.
    pub fn published_range(&self) -> Option<(u16, u16)> {
        let p = self.published.as_deref()?;
        match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|n| (n, n)),
        }
    }
}

/// A service's membership of a network.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// Extra names for the service on this network.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub aliases: Vec<String>,
    /// Fixed IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipv4_address: Option<String>,
}

/// What a mount is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named (or anonymous) volume.
    Volume,
    /// A host path.
    Bind,
    /// A tmpfs.
    Tmpfs,
    /// The file system of an image (Docker Engine API 1.48 and later).
    Image,
    /// A Swarm cluster volume.
    Cluster,
    /// A Windows named pipe.
    Npipe,
}

/// One entry of `volumes:` in a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Volume, bind, tmpfs, image, cluster or npipe.
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// Volume name (the key under top-level `volumes`), absolute host path, image or
    /// pipe; `None` for anonymous volumes and tmpfs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub read_only: bool,
}

/// One entry of `depends_on`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// When the dependency counts as ready.
    pub condition: Condition,
    /// Restart this service when the dependency is restarted.
    pub restart: bool,
    /// When false, a missing dependency is only a warning.
    pub required: bool,
}

words! {
    /// `depends_on.<svc>.condition`.
    pub enum Condition {
        /// The dependency's containers are running.
        ServiceStarted = "service_started",
        /// The dependency's containers are healthy.
        ServiceHealthy = "service_healthy",
        /// The dependency ran to completion with exit code 0.
        ServiceCompletedSuccessfully = "service_completed_successfully",
    }
}

/// `healthcheck:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Time one check may take.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retries: Option<u32>,
    /// Grace period at start during which failures do not count.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<Duration>,
    /// Time between checks during the start period.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<Duration>,
}

impl Healthcheck {
    /// True when the check is switched off (`disable: true` or `test: ["NONE"]`).
    pub fn disabled(&self) -> bool {
        self.test.first().map(String::as_str) == Some("NONE")
    }
}

/// `restart:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart on a non-zero exit, at most this many times when set.
    OnFailure(Option<u32>),
    /// Restart unless stopped by the user.
    UnlessStopped,
}

impl<'de> Deserialize<'de> for Restart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Restart, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "no" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure(None),
            other => match other.strip_prefix("on-failure:").map(str::parse) {
                Some(Ok(n)) => Restart::OnFailure(Some(n)),
                _ => return Err(serde::de::Error::custom(format!("unknown restart `{s}`"))),
            },
        })
    }
}

impl Serialize for Restart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Restart::No => s.serialize_str("no"),
            Restart::Always => s.serialize_str("always"),
            Restart::OnFailure(None) => s.serialize_str("on-failure"),
            Restart::OnFailure(Some(n)) => s.serialize_str(&format!("on-failure:{n}")),
            Restart::UnlessStopped => s.serialize_str("unless-stopped"),
        }
    }
}

/// `deploy:`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Deploy {
    /// Replicas to run (`deploy.replicas` or `scale`), 1 when unset.
    pub replicas: u32,
    /// Resource limits.
    #[serde(skip_serializing_if = "Resources::is_empty", default)]
    pub resources: Resources,
    /// `deploy.restart_policy`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub restart_policy: Option<RestartPolicy>,
    /// `deploy.update_config`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_config: Option<UpdateConfig>,
    /// `deploy.rollback_config`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollback_config: Option<UpdateConfig>,
    /// Other deploy keys (`mode`, `placement`, `labels`, ...), as written.
    #[serde(flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// `deploy.resources`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Hard limits.
    #[serde(skip_serializing_if = "Limits::is_empty", default)]
    pub limits: Limits,
    /// Reservations.
    #[serde(skip_serializing_if = "Limits::is_empty", default)]
    pub reservations: Limits,
}

impl Resources {
    fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.reservations.is_empty()
    }
}

/// CPU, memory and process limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPUs, fractional.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpus: Option<f64>,
    /// Memory in bytes; written as a string, the type the specification gives it.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "bytes_text")]
    pub memory: Option<u64>,
    /// Maximum number of processes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pids: Option<i64>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A byte count as the string `"1073741824"`, read back from a string or a number.
mod bytes_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&n.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Number(n)) => Ok(Some(n)),
            Some(Either::Text(t)) => t.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

words! {
    /// `deploy.restart_policy.condition`.
    pub enum RestartCondition {
        /// Never.
        None = "none",
        /// After a non-zero exit.
        OnFailure = "on-failure",
        /// After any exit (the default).
        Any = "any",
    }
}

/// `deploy.restart_policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Which exits are followed by a restart.
    pub condition: RestartCondition,
    /// Wait between restarts.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// Give up after this many attempts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_attempts: Option<u32>,
    /// Window in which a restart is judged successful.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
}

/// `deploy.update_config` and `deploy.rollback_config`, as written: what is unset is
/// left to the control plane, whose defaults depend on the service (see
/// `shoal_engine::rollout`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Replicas replaced at once; 0 means all at once.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parallelism: Option<u32>,
    /// Wait between batches.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// What a failed update does.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_action: Option<FailureAction>,
    /// How long to watch a new replica for failure once it is ready.
    #[serde(
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub monitor: Option<Duration>,
    /// Share of the updated replicas that may fail before the failure action (0 to 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_failure_ratio: Option<f64>,
    /// Whether a new replica starts before its old one stops.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub order: Option<Order>,
}

words! {
    /// `update_config.failure_action`.
    pub enum FailureAction {
        /// Go on with the next replicas.
        Continue = "continue",
        /// Go back to the previous revision.
        Rollback = "rollback",
        /// Stop where it is until resumed.
        Pause = "pause",
    }
}

words! {
    /// `update_config.order`.
    pub enum Order {
        /// The old replica stops before its successor starts.
        StopFirst = "stop-first",
        /// The successor is ready before the old replica stops.
        StartFirst = "start-first",
    }
}

/// A service's use of a secret or config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Name under top-level `secrets`/`configs`.
    pub source: String,
    /// Path in the container (absolute).
    pub target: String,
}

/// A top-level network.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Network {
    /// Engine-side name (`<project>_<key>` unless `name:` or external).
    pub name: String,
    /// Managed outside the project: used, never created or removed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub external: bool,
    /// Driver, `bridge` when unset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub driver: Option<String>,
    /// No outside access.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub internal: bool,
    /// Labels.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub labels: IndexMap<String, String>,
    /// Other keys (`ipam`, `driver_opts`, ...), as written.
    #[serde(flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Volume {
    /// Engine-side name (`<project>_<key>` unless `name:` or external).
    pub name: String,
    /// Managed outside the project: used, never created or removed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub external: bool,
    /// Driver, `local` when unset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub driver_opts: IndexMap<String, String>,
    /// Labels.
    #[serde(skip_serializing_if = "IndexMap::is_empty", default)]
    pub labels: IndexMap<String, String>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileObject {
    /// Name.
    pub name: String,
    /// Absolute path of the file holding it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file: Option<String>,
    /// Content given inline (configs only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<String>,
    /// Environment variable holding it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub environment: Option<String>,
    /// Managed outside the project.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub external: bool,
}

/// Writes a duration the way Compose files write them: `1m30s`, `500ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::syntax::duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => crate::syntax::duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

impl Service {
    /// The hash of a revision of this service: its [`Service::config_hash`] and the
    /// id of the image it runs, so that an image rebuilt under the same name is a new
    /// revision too.
    pub fn revision_hash(&self, image_id: Option<&str>) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!(
            "{}\n{}",
            self.config_hash(),
            image_id.unwrap_or("")
        ));
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The order of a rolling update when `update_config.order` is unset:
    /// `stop-first` where two copies of a replica cannot run side by side (a fixed
    /// container name, the host's network, a named volume of a single replica), else
    /// `start-first`.
    pub fn default_order(&self) -> Order {
        let named_volume = self
            .volumes
            .iter()
            .any(|m| m.kind == MountKind::Volume && m.source.is_some());
        let exclusive = self.container_name.is_some()
            || self.network_mode.as_deref() == Some("host")
            || (named_volume && self.deploy.replicas <= 1);
        if exclusive {
            Order::StopFirst
        } else {
            Order::StartFirst
        }
    }

    /// The port `x-shoal.health` probes: its own `port`, else the first published
    /// port's target, else the first exposed port.
    pub fn probe_port(&self) -> Option<u16> {
        self.x_shoal
            .health
            .as_ref()
            .and_then(|p| p.port)
            .or_else(|| self.ports.first().map(|p| p.target))
            .or_else(|| self.exposed_ports().next().map(|(port, _)| port))
    }

    /// The single ports of `expose` with their protocol (`"8080"` is tcp,
    /// `"53/udp"`); ranges (`"3000-3005"`) are left out.
    pub fn exposed_ports(&self) -> impl Iterator<Item = (u16, &str)> + '_ {
        self.expose.iter().filter_map(|e| {
            let (port, protocol) = e.split_once('/').unwrap_or((e, "tcp"));
            Some((port.parse().ok()?, protocol))
        })
    }

    /// A hash of everything that shapes this service's containers. Replicas made from
    /// another hash are out of date. What only the control plane reads is left out
    /// (the replica count, restart and update policies, `x-shoal`): changing it
    /// replaces no replica.
    pub fn config_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut copy = self.clone();
        copy.deploy.replicas = 0;
        copy.deploy.update_config = None;
        copy.deploy.rollback_config = None;
        copy.deploy.restart_policy = None;
        copy.restart = None;
        copy.x_shoal = XShoal::default();
        let json = serde_json::to_vec(&(&copy.name, &copy)).expect("the model always serializes");
        let digest = Sha256::digest(&json);
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }
}
