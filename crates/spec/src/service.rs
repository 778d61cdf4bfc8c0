//! Typing one service.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::convert::{join, Cx};
use crate::dotenv;
use crate::error::SpecError;
use crate::model::*;
use crate::syntax;
use crate::yaml::{Key, Node, Value};

impl Cx<'_> {
    /// Types the service `name`; `None` when it has errors (already recorded).
    pub fn service(
        &mut self,
        key: &Key,
        node: &Node,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Service> {
        let name = key.name.as_str();
        let path = join("services", name);
        let fields = self.entries(node, &path)?;
        let mut svc = Service {
            name: name.to_string(),
            deploy: Deploy {
                replicas: 1,
                ..Deploy::default()
            },
            ..Service::default()
        };
        let mut image = None;
        let mut env_files = Vec::new();
        let mut environment = IndexMap::new();
        let mut scale = None;
        for (k, v) in fields {
            let p = join(&path, &k.name);
            let p = p.as_str();
            match k.name.as_str() {
                "image" => image = self.string(v, p),
                "build" => svc.build = self.build(v, p),
                "command" => svc.command = self.command(v, p),
                "entrypoint" => svc.entrypoint = self.command(v, p),
                "environment" => environment = self.dict(v, p),
                "env_file" => env_files = self.env_files(v, p),
                "ports" => svc.ports = self.ports(v, p),
                "expose" => {
                    svc.expose = match v.as_seq() {
                        Some(items) => items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, n)| self.string(n, &format!("{p}[{i}]")))
                            .collect(),
                        None => {
                            self.error(v, p, "expected a sequence of ports");
                            Vec::new()
                        }
                    }
                }
                "networks" => svc.networks = self.service_networks(v, p),
                "network_mode" => svc.network_mode = self.string(v, p),
                "volumes" => svc.volumes = self.mounts(v, p),
                "depends_on" => svc.depends_on = self.depends_on(v, p),
                "healthcheck" => svc.healthcheck = self.healthcheck(v, p),
                "restart" => svc.restart = self.restart(v, p),
                "deploy" => self.deploy(v, p, &mut svc.deploy),
                "scale" => scale = self.int(v, p, 0, 10_000).map(|n| n as u32),
                "labels" => svc.labels = self.labels(v, p),
                "stop_grace_period" => svc.stop_grace_period = self.duration(v, p),
                "stop_signal" => svc.stop_signal = self.string(v, p),
                "user" => svc.user = self.string(v, p),
                "working_dir" => svc.working_dir = self.string(v, p),
                "hostname" => svc.hostname = self.string(v, p),
                "container_name" => svc.container_name = self.string(v, p),
                "secrets" => svc.secrets = self.file_refs(v, p, "/run/secrets/"),
                "configs" => svc.configs = self.file_refs(v, p, "/"),
                "profiles" => svc.profiles = self.strings(v, p),
                "x-shoal" => svc.x_shoal = self.x_shoal(v, p),
                "extends" => {} // resolved before typing
                key if key.starts_with("x-") => {}
                key => {
                    svc.other.insert(key.to_string(), v.to_json());
                }
            }
        }
        if let Some(n) = scale {
            svc.deploy.replicas = n;
        }
        svc.image = match (image, &svc.build) {
            (Some(image), _) => image,
            (None, Some(_)) => format!("{}-{name}", self.project),
            (None, None) => {
                self.errors.push(
                    SpecError::new(
                        key.mark.clone(),
                        &path,
                        format!("service `{name}` has neither `image` nor `build`"),
                    )
                    .hint("add `image: <name>` to run an image, or `build: <dir>` to build one"),
                );
                String::new()
            }
        };
        // env_file entries first, `environment` wins; unset names pass through from
        // the environment shoal runs in.
        for (file_node, file, required) in env_files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(_) if !required => continue,
                Err(e) => {
                    self.error_hint(
                        &file_node,
                        &join(&path, "env_file"),
                        format!("cannot read env file {file}: {e}"),
                        "create it, or mark it `required: false`",
                    );
                    continue;
                }
            };
            match dotenv::parse(&Arc::from(file.as_str()), &text, vars) {
                Ok(vars) => svc
                    .environment
                    .extend(vars.into_iter().map(|(k, v)| (k, Some(v)))),
                Err(e) => self.errors.push(e),
            }
        }
        for (k, v) in environment {
            let v = v.or_else(|| vars(&k));
            svc.environment.insert(k, v);
        }
        if let Some(probe) = &svc.x_shoal.health {
            if probe.port.is_none() && svc.probe_port().is_none() {
                let at = node
                    .get("x-shoal")
                    .and_then(|x| x.get("health"))
                    .unwrap_or(node);
                self.error_hint(
                    at,
                    &join(&path, "x-shoal.health"),
                    "the probe has no port to reach",
                    "add `port:`, or publish or expose the port the service listens on",
                );
            }
        }
        if let (Some(_), Some(nets)) = (&svc.network_mode, node.get("networks")) {
            self.error_hint(
                nets,
                &join(&path, "networks"),
                format!("`{name}` has both `network_mode` and `networks`"),
                "they exclude each other: keep one",
            );
        }
        if svc.network_mode.is_none() && svc.networks.is_empty() {
            svc.networks
                .insert("default".into(), ServiceNetwork::default());
        }
        // Typed even with errors, so that the checks across services still run and
        // every mistake is reported at once; the errors stop the load.
        Some(svc)
    }

    /// The top-level `x-shoal`.
    pub fn project_x_shoal(&mut self, node: Option<&Node>) -> ProjectXShoal {
        let mut x = ProjectXShoal::default();
        let Some(fields) = node.and_then(|n| self.fields(n, "x-shoal", &["metrics", "logs"]))
        else {
            return x;
        };
        for (k, v) in fields {
            let p = join("x-shoal", &k.name);
            if k.name == "logs" {
                x.logs = self.logs_settings(v, &p);
            }
            if k.name == "metrics" {
                if let Some(text) = self.string(v, &p) {
                    match MetricsAt::parse(&text) {
                        Ok(m) => x.metrics = Some(m),
                        Err(e) => {
                            self.error_hint(v, &p, e, "use IP:PORT, such as 127.0.0.1:9464, or off")
                        }
                    }
                }
            }
        }
        x
    }

    fn x_shoal(&mut self, node: &Node, path: &str) -> XShoal {
        let mut x = XShoal::default();
        let Some(fields) =
            self.fields(node, path, &["lb", "health", "autoscale", "update", "logs"])
        else {
            return x;
        };
        for (k, v) in fields {
            match k.name.as_str() {
                "logs" => x.logs = self.service_logs(v, &join(path, "logs")),
                "lb" => x.lb = self.lb(v, &join(path, "lb")),
                "health" => x.health = self.probe(v, &join(path, "health")),
                "autoscale" => x.autoscale = self.autoscale(v, &join(path, "autoscale")),
                "update" => x.update = self.update(v, &join(path, "update")),
                _ => {}
            }
        }
        x
    }

    /// The project's `x-shoal.logs`.
    fn logs_settings(&mut self, node: &Node, path: &str) -> Option<LogsSettings> {
        let fields = self.fields(
            node,
            path,
            &["max_size", "max_age", "segment_size", "forward"],
        )?;
        let mut l = LogsSettings::default();
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "max_size" => l.max_size = self.bytes(v, &p).unwrap_or(l.max_size),
                "max_age" => l.max_age = self.duration(v, &p).unwrap_or(l.max_age),
                "segment_size" => match self.bytes(v, &p) {
                    Some(b) if b < 4096 => self.error(v, &p, "a segment needs at least 4K"),
                    Some(b) => l.segment_size = b,
                    None => {}
                },
                "forward" => {
                    let Some(items) = v.as_seq() else {
                        self.error_hint(
                            v,
                            &p,
                            format!("expected a list of receivers, found {}", v.kind()),
                            "forward: [{type: loki, url: \"http://loki:3100\"}]",
                        );
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        if let Some(f) = self.forward(item, &format!("{p}[{i}]")) {
                            l.forward.push(f);
                        }
                    }
                }
                _ => {}
            }
        }
        if l.segment_size > l.max_size {
            self.error_hint(
                node,
                path,
                "`segment_size` is larger than `max_size`",
                "a store keeps whole segments: make max_size a few segments at least",
            );
        }
        Some(l)
    }

    fn forward(&mut self, node: &Node, path: &str) -> Option<Forward> {
        let fields = self.fields(node, path, &["type", "url", "index"])?;
        let (mut sink, mut url, mut index) = (None, None, None);
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "type" => sink = self.word::<Sink>(v, &p),
                "url" => match self.string(v, &p) {
                    Some(u) if u.starts_with("http://") => {
                        url = Some(u.trim_end_matches('/').to_string())
                    }
                    Some(u) => self.error_hint(
                        v,
                        &p,
                        format!("`{u}` is not an http:// URL"),
                        "give the receiver's base URL, such as http://loki:3100",
                    ),
                    None => {}
                },
                "index" => index = self.string(v, &p),
                _ => {}
            }
        }
        if node.get("type").is_none() || node.get("url").is_none() {
            self.error_hint(
                node,
                path,
                "a receiver needs `type` and `url`",
                "forward: [{type: loki, url: \"http://loki:3100\"}]",
            );
        }
        let (Some(sink), Some(url)) = (sink, url) else {
            return None;
        };
        Some(Forward { sink, url, index })
    }

    /// A service's `x-shoal.logs`.
    fn service_logs(&mut self, node: &Node, path: &str) -> Option<ServiceLogs> {
        let fields = self.fields(node, path, &["multiline"])?;
        let mut l = ServiceLogs::default();
        for (k, v) in fields {
            let p = join(path, &k.name);
            if k.name == "multiline" {
                let Some(re) = self.string(v, &p) else {
                    continue;
                };
                match regex::Regex::new(&re) {
                    Ok(_) => l.multiline = Some(re),
                    Err(e) => self.error_hint(
                        v,
                        &p,
                        format!(
                            "not a regular expression: {}",
                            e.to_string().lines().last().unwrap_or("")
                        ),
                        "a pattern that starts a record, such as '^\\S' or '^\\d{4}-'",
                    ),
                }
            }
        }
        Some(l)
    }

    /// A number from 0 to 1.
    fn ratio(&mut self, node: &Node, path: &str, hint: &str) -> Option<f64> {
        match self.float(node, path) {
            Some(r) if r > 1.0 => {
                self.error_hint(node, path, format!("{r} is not a ratio"), hint);
                None
            }
            r => r,
        }
    }

    fn update(&mut self, node: &Node, path: &str) -> Option<Update> {
        let fields = self.fields(node, path, &["ready_timeout", "error_ratio"])?;
        let mut u = Update::default();
        for (k, v) in fields {
            let kp = join(path, &k.name);
            match k.name.as_str() {
                "ready_timeout" => u.ready_timeout = self.duration(v, &kp),
                "error_ratio" => u.error_ratio = self.ratio(
                    v,
                    &kp,
                    "use a number from 0 to 1 (0.05 fails a replica when 5 % of its requests fail)",
                ),
                _ => {}
            }
        }
        Some(u)
    }

    fn autoscale(&mut self, node: &Node, path: &str) -> Option<Autoscale> {
        let fields = self.fields(
            node,
            path,
            &[
                "min",
                "max",
                "metric",
                "target",
                "stable_window",
                "panic_window",
                "scale_down_delay",
                "tolerance",
                "policy",
            ],
        )?;
        let mut a = Autoscale {
            min: 1,
            max: 10,
            metric: Metric::Concurrency,
            target: 0.0,
            stable_window: Duration::from_secs(30),
            panic_window: Duration::from_secs(3),
            scale_down_delay: Duration::from_secs(30),
            tolerance: 0.1,
            policy: Policy::Shoal,
        };
        let mut target_set = false;
        for (k, v) in fields {
            let kp = join(path, &k.name);
            let kp = kp.as_str();
            match k.name.as_str() {
                "min" => a.min = self.int(v, kp, 0, 10_000).unwrap_or(1) as u32,
                "max" => a.max = self.int(v, kp, 1, 10_000).unwrap_or(10) as u32,
                "metric" => a.metric = self.word(v, kp).unwrap_or(a.metric),
                "target" => match self.float(v, kp) {
                    Some(t) if t > 0.0 => {
                        a.target = t;
                        target_set = true;
                    }
                    Some(_) => self.error(v, kp, "the target must be above zero"),
                    None => {}
                },
                "stable_window" => {
                    a.stable_window = self.duration(v, kp).unwrap_or(a.stable_window)
                }
                "panic_window" => a.panic_window = self.duration(v, kp).unwrap_or(a.panic_window),
                "scale_down_delay" => {
                    a.scale_down_delay = self.duration(v, kp).unwrap_or(a.scale_down_delay)
                }
                "tolerance" => a.tolerance = self.float(v, kp).unwrap_or(a.tolerance),
                "policy" => a.policy = self.word(v, kp).unwrap_or(a.policy),
                _ => {}
            }
        }
        if !target_set {
            a.target = a.metric.default_target();
        }
        if a.min > a.max {
            self.error_hint(
                node,
                path,
                format!("min {} is above max {}", a.min, a.max),
                "min is the fewest replicas, max the most",
            );
        }
        if a.panic_window > a.stable_window {
            self.error(
                node,
                path,
                "the panic window must be shorter than the stable window",
            );
        }
        Some(a)
    }

    fn probe(&mut self, node: &Node, path: &str) -> Option<Probe> {
        let fields = self.fields(
            node,
            path,
            &[
                "http",
                "tcp",
                "port",
                "interval",
                "timeout",
                "healthy_after",
                "unhealthy_after",
                "start_period",
            ],
        )?;
        let mut p = Probe::default();
        for (k, v) in fields {
            let kp = join(path, &k.name);
            let kp = kp.as_str();
            match k.name.as_str() {
                "http" => match self.string(v, kp) {
                    Some(s) if s.starts_with('/') => p.http = Some(s),
                    Some(s) => self.error_hint(
                        v,
                        kp,
                        format!("`{s}` is not a path"),
                        "write the path to GET, such as /healthz",
                    ),
                    None => {}
                },
                "tcp" => p.tcp = self.bool(v, kp).unwrap_or(false),
                "port" => p.port = self.int(v, kp, 1, 65535).map(|n| n as u16),
                "interval" => p.interval = self.duration(v, kp).unwrap_or(p.interval),
                "timeout" => p.timeout = self.duration(v, kp).unwrap_or(p.timeout),
                "start_period" => p.start_period = self.duration(v, kp).unwrap_or(p.start_period),
                "healthy_after" => p.healthy_after = self.int(v, kp, 1, 100).unwrap_or(1) as u32,
                "unhealthy_after" => {
                    p.unhealthy_after = self.int(v, kp, 1, 100).unwrap_or(3) as u32
                }
                _ => {}
            }
        }
        if p.http.is_some() == p.tcp {
            self.error_hint(
                node,
                path,
                "a probe is either `http: <path>` or `tcp: true`",
                "health: {http: /healthz} or health: {tcp: true}",
            );
        }
        if p.interval.is_zero() {
            self.error(node, path, "the probe interval must be above zero");
        }
        Some(p)
    }

    fn lb(&mut self, node: &Node, path: &str) -> Option<Lb> {
        let fields = self.fields(
            node,
            path,
            &[
                "protocol",
                "strategy",
                "hash_on",
                "retries",
                "timeout",
                "connect_timeout",
                "eject_after",
                "drain_timeout",
            ],
        )?;
        let mut lb = Lb::default();
        for (k, v) in fields {
            let p = join(path, &k.name);
            let p = p.as_str();
            match k.name.as_str() {
                "protocol" => lb.protocol = self.word(v, p).unwrap_or(lb.protocol),
                "strategy" => lb.strategy = self.word(v, p).unwrap_or(lb.strategy),
                "hash_on" => {
                    let Some(s) = self.string(v, p) else { continue };
                    if let Some(on) = HashOn::parse(&s) {
                        lb.hash_on = Some(on);
                    } else {
                        self.error_hint(
                            v,
                            p,
                            format!("`{s}` is not a hash key"),
                            "use client_ip, header:<name> or cookie:<name>",
                        );
                    }
                }
                "retries" => lb.retries = self.int(v, p, 0, 10).unwrap_or(2) as u32,
                "eject_after" => lb.eject_after = self.int(v, p, 1, 1000).unwrap_or(5) as u32,
                "timeout" => lb.timeout = self.duration(v, p).unwrap_or(lb.timeout),
                "connect_timeout" => {
                    lb.connect_timeout = self.duration(v, p).unwrap_or(lb.connect_timeout)
                }
                "drain_timeout" => {
                    lb.drain_timeout = self.duration(v, p).unwrap_or(lb.drain_timeout)
                }
                _ => {}
            }
        }
        if lb.strategy == Strategy::Hash && lb.hash_on.is_none() {
            self.error_hint(
                node,
                path,
                "strategy `hash` needs `hash_on`",
                "hash_on: client_ip, header:<name> or cookie:<name>",
            );
        }
        Some(lb)
    }

    /// A string that must be one of `allowed`.
    /// A word of a closed vocabulary.
    fn word<W: Words>(&mut self, node: &Node, path: &str) -> Option<W> {
        let s = self.string(node, path)?;
        if let Some(w) = W::parse(&s) {
            return Some(w);
        }
        let mut e = SpecError::new(
            node.mark.clone(),
            path,
            format!("`{s}` is not one of: {}", W::WORDS.join(", ")),
        );
        if let Some(best) = crate::convert::closest(&s, W::WORDS) {
            e = e.hint(format!("did you mean `{best}`?"));
        }
        self.errors.push(e);
        None
    }

    fn build(&mut self, node: &Node, path: &str) -> Option<Build> {
        if let Some(context) = node.as_str() {
            return Some(Build {
                context: self.context(context),
                dockerfile: "Dockerfile".into(),
                ..Build::default()
            });
        }
        let fields = self.entries(node, path)?;
        let mut build = Build {
            context: self.context("."),
            dockerfile: "Dockerfile".into(),
            ..Build::default()
        };
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "context" => {
                    if let Some(c) = self.string(v, &p) {
                        build.context = self.context(&c);
                    }
                }
                "dockerfile" => build.dockerfile = self.string(v, &p).unwrap_or_default(),
                "args" => {
                    build.args = self
                        .dict(v, &p)
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect()
                }
                "target" => build.target = self.string(v, &p),
                "labels" => build.labels = self.labels(v, &p),
                key if key.starts_with("x-") => {}
                key => {
                    build.other.insert(key.to_string(), v.to_json());
                }
            }
        }
        Some(build)
    }

    fn context(&self, c: &str) -> String {
        if c.contains("://") || c.starts_with("git@") {
            c.to_string()
        } else {
            syntax::host_path(c, self.dir)
        }
    }

    /// `env_file`: (node, absolute path, required) for each entry.
    fn env_files(&mut self, node: &Node, path: &str) -> Vec<(Node, String, bool)> {
        let items: Vec<Node> = match &node.value {
            Value::Seq(items) => items.clone(),
            _ => vec![node.clone()],
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if item.as_map().is_some() {
                let Some(fields) = self.entries(item, &p) else {
                    continue;
                };
                let mut file = None;
                let mut required = true;
                for (k, v) in fields {
                    match k.name.as_str() {
                        "path" => file = self.string(v, &join(&p, "path")),
                        "required" => {
                            required = self.bool(v, &join(&p, "required")).unwrap_or(true)
                        }
                        _ => {}
                    }
                }
                match file {
                    Some(f) => out.push((item.clone(), syntax::host_path(&f, self.dir), required)),
                    None => self.error(item, &p, "an env_file entry needs `path`"),
                }
            } else if let Some(f) = self.string(item, &p) {
                out.push((item.clone(), syntax::host_path(&f, self.dir), true));
            }
        }
        out
    }

    fn ports(&mut self, node: &Node, path: &str) -> Vec<Port> {
        let Some(items) = node.as_seq() else {
            self.error_hint(
                node,
                path,
                format!("expected a sequence of ports, found {}", node.kind()),
                "write ports as a list: ports: [\"8080:80\"]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if item.as_map().is_some() {
                let Some(fields) = self.entries(item, &p) else {
                    continue;
                };
                let mut port = Port {
                    target: 0,
                    published: None,
                    host_ip: String::new(),
                    protocol: "tcp".into(),
                    mode: "ingress".into(),
                };
                for (k, v) in fields {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "target" => port.target = self.int(v, &kp, 1, 65535).unwrap_or(0) as u16,
                        "published" => port.published = self.string(v, &kp),
                        "host_ip" => port.host_ip = self.string(v, &kp).unwrap_or_default(),
                        "protocol" => port.protocol = self.string(v, &kp).unwrap_or_default(),
                        "mode" => port.mode = self.string(v, &kp).unwrap_or_default(),
                        _ => {}
                    }
                }
                if port.target == 0 {
                    self.error(item, &p, "a port needs `target`, the port in the container");
                } else if port.published.is_some() && port.published_range().is_none() {
                    self.error_hint(
                        item,
                        &p,
                        format!(
                            "`published: {}` is not a port or range",
                            port.published.unwrap_or_default()
                        ),
                        "published is a port (8080) or a range (8080-8090)",
                    );
                } else {
                    out.push(port);
                }
            } else if let Some(text) = self.string(item, &p) {
                match syntax::short_port(&text) {
                    Ok(ports) => out.extend(ports),
                    Err(e) => self.error_hint(
                        item,
                        &p,
                        e,
                        "ports look like \"8080:80\", \"127.0.0.1:8080:80/tcp\" or \"3000\"",
                    ),
                }
            }
        }
        out
    }

    fn service_networks(&mut self, node: &Node, path: &str) -> IndexMap<String, ServiceNetwork> {
        let mut out = IndexMap::new();
        match &node.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(n) = self.string(item, &format!("{path}[{i}]")) {
                        out.insert(n, ServiceNetwork::default());
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let p = join(path, &k.name);
                    let mut net = ServiceNetwork::default();
                    let Some(fields) = self.entries(v, &p) else {
                        continue;
                    };
                    for (fk, fv) in fields {
                        match fk.name.as_str() {
                            "aliases" => net.aliases = self.strings(fv, &join(&p, "aliases")),
                            "ipv4_address" => {
                                net.ipv4_address = self.string(fv, &join(&p, "ipv4_address"))
                            }
                            _ => {}
                        }
                    }
                    out.insert(k.name.clone(), net);
                }
            }
            _ => self.error(
                node,
                path,
                format!(
                    "expected a list or mapping of networks, found {}",
                    node.kind()
                ),
            ),
        }
        out
    }

    fn mounts(&mut self, node: &Node, path: &str) -> Vec<Mount> {
        let Some(items) = node.as_seq() else {
            self.error(
                node,
                path,
                format!("expected a sequence of volumes, found {}", node.kind()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if item.as_map().is_none() {
                if let Some(text) = self.string(item, &p) {
                    match syntax::short_volume(&text, self.dir) {
                        Ok(m) => out.push(m),
                        Err(e) => self.error_hint(
                            item,
                            &p,
                            e,
                            "volumes look like `name:/path`, `./dir:/path:ro` or `/path`",
                        ),
                    }
                }
                continue;
            }
            let Some(fields) = self.entries(item, &p) else {
                continue;
            };
            let mut kind = None;
            let mut source = None;
            let mut target = None;
            let mut read_only = false;
            for (k, v) in fields {
                let kp = join(&p, &k.name);
                match k.name.as_str() {
                    "type" => {
                        // The shape check allows only the specification's types.
                        kind = match self.string(v, &kp).as_deref() {
                            Some("volume") => Some(MountKind::Volume),
                            Some("bind") => Some(MountKind::Bind),
                            Some("tmpfs") => Some(MountKind::Tmpfs),
                            Some("image") => Some(MountKind::Image),
                            Some("cluster") => Some(MountKind::Cluster),
                            Some("npipe") => Some(MountKind::Npipe),
                            _ => None,
                        }
                    }
                    "source" => source = self.string(v, &kp),
                    "target" => target = self.string(v, &kp),
                    "read_only" => read_only = self.bool(v, &kp).unwrap_or(false),
                    _ => {}
                }
            }
            let Some(kind) = kind else {
                continue; // reported by the shape check
            };
            let Some(target) = target else {
                self.error(
                    item,
                    &p,
                    "a volume entry needs `target`, the path in the container",
                );
                continue;
            };
            let source = match kind {
                MountKind::Bind => match source {
                    Some(s) => Some(syntax::host_path(&s, self.dir)),
                    None => {
                        self.error(item, &p, "a bind mount needs `source`, the host path");
                        continue;
                    }
                },
                MountKind::Tmpfs => None,
                MountKind::Volume | MountKind::Image | MountKind::Cluster | MountKind::Npipe => {
                    source
                }
            };
            out.push(Mount {
                kind,
                source,
                target,
                read_only,
            });
        }
        out
    }

    fn depends_on(&mut self, node: &Node, path: &str) -> IndexMap<String, Dependency> {
        let mut out = IndexMap::new();
        let started = Dependency {
            condition: Condition::ServiceStarted,
            restart: false,
            required: true,
        };
        match &node.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(name) = self.string(item, &format!("{path}[{i}]")) {
                        out.insert(name, started.clone());
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let p = join(path, &k.name);
                    let Some(fields) = self.entries(v, &p) else {
                        continue;
                    };
                    let mut dep = started.clone();
                    for (fk, fv) in fields {
                        let fp = join(&p, &fk.name);
                        match fk.name.as_str() {
                            "condition" => {
                                dep.condition = self.word(fv, &fp).unwrap_or(dep.condition)
                            }
                            "restart" => dep.restart = self.bool(fv, &fp).unwrap_or(false),
                            "required" => dep.required = self.bool(fv, &fp).unwrap_or(true),
                            _ => {}
                        }
                    }
                    out.insert(k.name.clone(), dep);
                }
            }
            _ => self.error(
                node,
                path,
                format!(
                    "expected a list or mapping of services, found {}",
                    node.kind()
                ),
            ),
        }
        out
    }

    fn healthcheck(&mut self, node: &Node, path: &str) -> Option<Healthcheck> {
        let fields = self.entries(node, path)?;
        let mut hc = Healthcheck {
            test: Vec::new(),
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        };
        let mut disable = false;
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "test" => {
                    hc.test = if v.as_seq().is_some() {
                        let test = self.strings(v, &p);
                        if !matches!(
                            test.first().map(String::as_str),
                            Some("CMD" | "CMD-SHELL" | "NONE")
                        ) {
                            self.error_hint(
                                v,
                                &p,
                                "a healthcheck test list must start with CMD, CMD-SHELL or NONE",
                                "e.g. [\"CMD\", \"curl\", \"-f\", \"http://localhost\"]",
                            );
                        }
                        test
                    } else {
                        self.string(v, &p)
                            .map(|s| vec!["CMD-SHELL".to_string(), s])
                            .unwrap_or_default()
                    }
                }
                "interval" => hc.interval = self.duration(v, &p),
                "timeout" => hc.timeout = self.duration(v, &p),
                "start_period" => hc.start_period = self.duration(v, &p),
                "start_interval" => hc.start_interval = self.duration(v, &p),
                "retries" => hc.retries = self.int(v, &p, 0, i64::from(u32::MAX)).map(|n| n as u32),
                "disable" => disable = self.bool(v, &p).unwrap_or(false),
                _ => {}
            }
        }
        if disable {
            hc.test = vec!["NONE".into()];
        }
        Some(hc)
    }

    fn restart(&mut self, node: &Node, path: &str) -> Option<Restart> {
        let text = self.string(node, path)?;
        Some(match text.as_str() {
            // docker compose takes an empty policy for `no`.
            "" | "no" | "false" => Restart::No,
            "always" => Restart::Always,
            "on-failure" => Restart::OnFailure(None),
            "unless-stopped" => Restart::UnlessStopped,
            other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => Restart::OnFailure(Some(n)),
                _ => {
                    self.error_hint(
                        node,
                        path,
                        format!("unknown restart policy `{other}`"),
                        "use no, always, on-failure[:N] or unless-stopped",
                    );
                    return None;
                }
            },
        })
    }

    fn deploy(&mut self, node: &Node, path: &str, deploy: &mut Deploy) {
        let Some(fields) = self.entries(node, path) else {
            return;
        };
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "replicas" => {
                    if let Some(n) = self.int(v, &p, 0, 10_000) {
                        deploy.replicas = n as u32;
                    }
                }
                "resources" => {
                    let Some(res) = self.entries(v, &p) else {
                        continue;
                    };
                    for (rk, rv) in res {
                        let limits = self.limits(rv, &join(&p, &rk.name));
                        match rk.name.as_str() {
                            "limits" => deploy.resources.limits = limits,
                            "reservations" => deploy.resources.reservations = limits,
                            _ => {}
                        }
                    }
                }
                "restart_policy" => {
                    let Some(rp) = self.entries(v, &p) else {
                        continue;
                    };
                    let mut policy = RestartPolicy {
                        condition: RestartCondition::Any,
                        delay: None,
                        max_attempts: None,
                        window: None,
                    };
                    for (rk, rv) in rp {
                        let rp = join(&p, &rk.name);
                        match rk.name.as_str() {
                            "condition" => {
                                policy.condition = self.word(rv, &rp).unwrap_or(policy.condition)
                            }
                            "delay" => policy.delay = self.duration(rv, &rp),
                            "window" => policy.window = self.duration(rv, &rp),
                            "max_attempts" => {
                                policy.max_attempts =
                                    self.int(rv, &rp, 0, i64::from(u32::MAX)).map(|n| n as u32)
                            }
                            _ => {}
                        }
                    }
                    deploy.restart_policy = Some(policy);
                }
                "update_config" => deploy.update_config = self.update_config(v, &p),
                "rollback_config" => deploy.rollback_config = self.update_config(v, &p),
                key if key.starts_with("x-") => {}
                key => {
                    deploy.other.insert(key.to_string(), v.to_json());
                }
            }
        }
        if deploy.other.get("mode").and_then(|m| m.as_str()) == Some("global") {
            deploy.replicas = 1;
        }
    }

    fn limits(&mut self, node: &Node, path: &str) -> Limits {
        let mut limits = Limits::default();
        let Some(fields) = self.entries(node, path) else {
            return limits;
        };
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "cpus" => limits.cpus = self.float(v, &p),
                "memory" => limits.memory = self.bytes(v, &p),
                "pids" => limits.pids = self.int(v, &p, -1, i64::MAX),
                "devices" => self.device_requests(v, &p),
                _ => {}
            }
        }
        limits
    }

    /// Device reservations (and `gpus:` entries): `count` is a whole number or `all`,
    /// and names the devices by number or by `device_ids`, not both.
    pub fn device_requests(&mut self, node: &Node, path: &str) {
        for (i, d) in node.as_seq().unwrap_or_default().iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(count) = d.get("count") else {
                continue;
            };
            let cp = join(&p, "count");
            if count.as_str() != Some("all") && self.int(count, &cp, -1, i64::MAX).is_none() {
                continue;
            }
            if d.get("device_ids").is_some() {
                self.error_hint(
                    count,
                    &cp,
                    "`count` and `device_ids` both choose the devices",
                    "keep one of them",
                );
            }
        }
    }

    fn update_config(&mut self, node: &Node, path: &str) -> Option<UpdateConfig> {
        let fields = self.entries(node, path)?;
        let mut uc = UpdateConfig::default();
        for (k, v) in fields {
            let p = join(path, &k.name);
            match k.name.as_str() {
                "parallelism" => uc.parallelism = self.int(v, &p, 0, 10_000).map(|n| n as u32),
                "delay" => uc.delay = self.duration(v, &p),
                "monitor" => uc.monitor = self.duration(v, &p),
                "max_failure_ratio" => {
                    uc.max_failure_ratio = self.ratio(
                        v,
                        &p,
                        "use a number from 0 to 1 (0.2 lets one replica in five fail)",
                    )
                }
                "failure_action" => uc.failure_action = self.word(v, &p),
                "order" => uc.order = self.word(v, &p),
                _ => {}
            }
        }
        Some(uc)
    }

    fn file_refs(&mut self, node: &Node, path: &str, base: &str) -> Vec<FileRef> {
        let Some(items) = node.as_seq() else {
            self.error(
                node,
                path,
                format!("expected a sequence, found {}", node.kind()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let (source, target) = if item.as_map().is_some() {
                let Some(fields) = self.entries(item, &p) else {
                    continue;
                };
                let mut source = None;
                let mut target = None;
                for (k, v) in fields {
                    match k.name.as_str() {
                        "source" => source = self.string(v, &join(&p, "source")),
                        "target" => target = self.string(v, &join(&p, "target")),
                        _ => {}
                    }
                }
                let Some(source) = source else {
                    self.error(item, &p, "needs `source`");
                    continue;
                };
                (source, target)
            } else {
                let Some(source) = self.string(item, &p) else {
                    continue;
                };
                (source, None)
            };
            let target = match target {
                Some(t) if t.starts_with('/') => t,
                Some(t) => format!("{base}{t}"),
                None => format!("{base}{source}"),
            };
            out.push(FileRef { source, target });
        }
        out
    }
}
