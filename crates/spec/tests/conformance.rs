//! The loader against the Compose Specification's JSON schema.
//!
//! The oracle is the schema itself (`../shared/compose-spec/compose-spec.json`, draft
//! 2020-12, through the `jsonschema` crate) plus the checks Compose makes after it (the
//! conflicts and references below, written from compose-go's loader). The cases are
//! every Compose file of the shared corpus and systematic mutations of each: every
//! value given each wrong type, out-of-range values, an unknown sibling key in every
//! mapping, and conflicting siblings. The documents are parsed by an independent YAML
//! 1.2 library (saphyr) and handed to shoal as JSON text, which is YAML too.
//!
//! shoal must refuse every case the oracle refuses, with an error at the mutated node
//! (or the mapping that holds it), and accept every case the oracle accepts, with one
//! allowance: a change of a scalar's *content* (not its type) that shoal refuses at
//! that very node, where the schema says only "a string" and Compose parses the text
//! later (a port, a duration, a size). Those are counted and printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{json, Map, Value as J};
use shoal_spec::{load, LoadError, Options, SpecError};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

struct Oracle {
    schema: jsonschema::Validator,
}

impl Oracle {
    fn new() -> Oracle {
        let text = std::fs::read_to_string(shared().join("compose-spec/compose-spec.json"))
            .expect("the Compose Specification's schema is beside the repository");
        let schema: J = serde_json::from_str(&text).unwrap();
        let schema = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .expect("the schema compiles");
        Oracle { schema }
    }

    /// Why Compose refuses the document, or `None` when it takes it.
    fn verdict(&self, doc: &J) -> Option<String> {
        if let Some(e) = self.schema.iter_errors(doc).next() {
            return Some(format!("schema: {} at {}", e, e.instance_path()));
        }
        compose_checks(doc)
    }
}

// === YAML to JSON, as Compose reads it ===

fn yaml_to_json(y: &Yaml<'_>) -> Result<J, String> {
    Ok(match y {
        Yaml::Value(s) => scalar(s),
        Yaml::Representation(..) | Yaml::Alias(_) | Yaml::BadValue => {
            return Err(format!("unresolved node {y:?}"))
        }
        Yaml::Tagged(_, inner) => yaml_to_json(inner)?,
        Yaml::Sequence(items) => {
            J::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Yaml::Value(Scalar::String(k)) = k else {
                    return Err(format!("non-string key {k:?}"));
                };
                out.insert(k.to_string(), yaml_to_json(v)?);
            }
            J::Object(out)
        }
    })
}

fn scalar(s: &Scalar<'_>) -> J {
    match s {
        Scalar::Null => J::Null,
        Scalar::Boolean(b) => J::Bool(*b),
        Scalar::Integer(n) => json!(n),
        Scalar::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
            .map(J::Number)
            .unwrap_or(J::Null),
        Scalar::String(t) => J::String(t.to_string()),
    }
}

/// The documents of a file merged in order (a later document's keys win at the top
/// level and inside each top-level section), or why the file has no JSON form.
fn read_doc(text: &str) -> Result<J, String> {
    let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
    let mut merged = Map::new();
    for d in &docs {
        let J::Object(d) = yaml_to_json(d)? else {
            return Err("a document that is not a mapping".into());
        };
        for (k, v) in d {
            match (merged.get_mut(&k), v) {
                (Some(J::Object(old)), J::Object(new)) => {
                    for (k2, v2) in new {
                        old.insert(k2, v2);
                    }
                }
                (_, v) => {
                    merged.insert(k, v);
                }
            }
        }
    }
    Ok(J::Object(merged))
}

// === what Compose checks after the schema ===

fn truthy(v: Option<&J>) -> bool {
    match v {
        Some(J::Bool(b)) => *b,
        Some(J::String(s)) => s == "true",
        Some(J::Object(_)) => true,
        _ => false,
    }
}

fn names(v: Option<&J>) -> Vec<String> {
    match v {
        Some(J::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                J::String(s) => Some(s.clone()),
                J::Object(o) => o.get("source").and_then(J::as_str).map(String::from),
                _ => None,
            })
            .collect(),
        Some(J::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn compose_checks(doc: &J) -> Option<String> {
    let section = |name: &str| {
        doc.get(name)
            .and_then(J::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let services = section("services");
    let networks = section("networks");
    let volumes = section("volumes");

    for (kind, objects) in [("network", &networks), ("volume", &volumes)] {
        for (name, o) in objects {
            let Some(o) = o.as_object() else { continue };
            if truthy(o.get("external")) {
                for key in ["driver", "driver_opts", "labels"] {
                    if o.contains_key(key) {
                        return Some(format!("{kind} {name}: external with {key}"));
                    }
                }
            }
            let ext_name = o.get("external").and_then(|e| e.get("name"));
            if let (Some(a), Some(b)) = (ext_name, o.get("name")) {
                if a != b {
                    return Some(format!("{kind} {name}: name conflicts with external.name"));
                }
            }
        }
    }

    for (kind, keys) in [
        ("secrets", &["file", "environment"][..]),
        ("configs", &["file", "environment", "content"][..]),
    ] {
        for (name, o) in &section(kind) {
            let Some(o) = o.as_object() else { continue };
            match keys.iter().filter(|k| o.contains_key(**k)).count() {
                0 if !o.contains_key("driver") && !o.contains_key("external") => {
                    return Some(format!("{kind} {name}: no source"));
                }
                n if n > 1 => return Some(format!("{kind} {name}: several sources")),
                _ => {}
            }
        }
    }
    for (name, svc) in &services {
        let Some(svc) = svc.as_object() else { continue };
        if !svc.contains_key("image") && !svc.contains_key("build") && !svc.contains_key("extends")
        {
            return Some(format!("{name}: neither image nor build"));
        }
        let replicas = svc
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .or(svc.get("scale"));
        let several = replicas.is_some_and(|r| {
            r.to_string()
                .trim_matches('"')
                .parse::<i64>()
                .is_ok_and(|n| n > 1)
        });
        if svc.contains_key("container_name") && several {
            return Some(format!("{name}: container_name with several replicas"));
        }
        if svc.contains_key("network_mode") && svc.contains_key("networks") {
            return Some(format!("{name}: network_mode and networks"));
        }
        let replicas = svc.get("deploy").and_then(|d| d.get("replicas"));
        if let (Some(a), Some(b)) = (svc.get("scale"), replicas) {
            if a.to_string().trim_matches('"') != b.to_string().trim_matches('"') {
                return Some(format!("{name}: scale and deploy.replicas differ"));
            }
        }
        let devices = svc
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("reservations"))
            .and_then(|r| r.get("devices"))
            .and_then(J::as_array)
            .into_iter()
            .flatten()
            .chain(svc.get("gpus").and_then(J::as_array).into_iter().flatten());
        for d in devices {
            match d.get("count") {
                Some(J::String(c)) if c != "all" && c.parse::<i64>().is_err() => {
                    return Some(format!("{name}: device count `{c}`"));
                }
                Some(_) if d.get("device_ids").is_some() => {
                    return Some(format!("{name}: device count and device_ids"));
                }
                _ => {}
            }
        }
        for net in names(svc.get("networks")) {
            if net != "default" && !networks.contains_key(&net) {
                return Some(format!("{name}: undefined network {net}"));
            }
        }
        for dep in names(svc.get("depends_on")) {
            if !services.contains_key(&dep) {
                return Some(format!("{name}: depends on undefined {dep}"));
            }
        }
        for (key, top) in [("secrets", "secrets"), ("configs", "configs")] {
            let defined = section(top);
            for s in names(svc.get(key)) {
                if !defined.contains_key(&s) {
                    return Some(format!("{name}: undefined {key} {s}"));
                }
            }
        }
        for v in svc
            .get("volumes")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
        {
            let source = match v {
                J::String(s) => s.split(':').next().filter(|_| s.contains(':')),
                J::Object(o) if o.get("type").and_then(J::as_str) == Some("volume") => {
                    o.get("source").and_then(J::as_str)
                }
                _ => None,
            };
            if let Some(src) = source {
                let path_like = src.starts_with(['/', '.', '~', '$']) || src.is_empty();
                if !path_like && !volumes.contains_key(src) {
                    return Some(format!("{name}: undefined volume {src}"));
                }
            }
        }
    }
    None
}

// === shoal's verdict ===

fn shoal(text: &str, dir: &Path, tmp: &Path) -> Result<(), Vec<SpecError>> {
    let file = tmp.join("compose.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = Options {
        files: vec![file],
        working_dir: dir.to_path_buf(),
        project_dir: Some(dir.to_path_buf()),
        project_name: Some("conformance".into()),
        ..Options::default()
    };
    match load(&opts) {
        Ok(_) => Ok(()),
        Err(LoadError::Invalid(errors)) => Err(errors),
        Err(e) => panic!("not a verdict on the document: {e}"),
    }
}

// === mutations ===

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    /// A value given another type.
    Type,
    /// A value of the same type with other content.
    Value,
    /// An unknown key beside the others.
    Sibling,
    /// A key that conflicts with another.
    Conflict,
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path as shoal writes it: `services.web.ports[0]`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => write!(out, ".{k}").unwrap(),
            Step::Index(i) => write!(out, "[{i}]").unwrap(),
        }
    }
    out
}

fn at<'a>(doc: &'a mut J, path: &[Step]) -> &'a mut J {
    path.iter().fold(doc, |node, s| match s {
        Step::Key(k) => node.get_mut(k).unwrap(),
        Step::Index(i) => node.get_mut(*i).unwrap(),
    })
}

struct Mutation {
    kind: Kind,
    path: Vec<Step>,
    doc: J,
    what: String,
}

fn mutations(doc: &J) -> Vec<Mutation> {
    let mut out = Vec::new();
    walk(doc, doc, &mut Vec::new(), &mut out);
    out
}

fn walk(root: &J, node: &J, path: &mut Vec<Step>, out: &mut Vec<Mutation>) {
    let mut push =
        |kind: Kind, path: &[Step], what: String, value: Option<J>, extra: Option<(&str, J)>| {
            let mut doc = root.clone();
            let target = at(&mut doc, path);
            if let Some(v) = value {
                *target = v;
            }
            if let Some((k, v)) = extra {
                target.as_object_mut().unwrap().insert(k.to_string(), v);
            }
            out.push(Mutation {
                kind,
                path: path.to_vec(),
                doc,
                what,
            });
        };
    if !path.is_empty() {
        let substitutes: Vec<J> = match node {
            J::String(s) => vec![json!(7), json!(true), json!({"k": "v"}), json!([s])],
            J::Number(n) => vec![
                json!(n.to_string()),
                json!(true),
                json!({"k": "v"}),
                json!([n]),
            ],
            J::Bool(b) => vec![json!(b.to_string()), json!(1), json!({"k": "v"})],
            J::Null => vec![json!(7), json!([])],
            J::Array(items) => {
                let first = items.first().and_then(J::as_str).unwrap_or("s");
                vec![json!(first), json!({"k": "v"}), json!(7)]
            }
            J::Object(_) => vec![json!("s"), json!(["s"]), json!(7)],
        };
        for v in substitutes {
            push(Kind::Type, path, format!("= {v}"), Some(v), None);
        }
        let values: Vec<J> = match node {
            J::String(_) => vec![json!(""), json!("no-such-value")],
            J::Number(_) => vec![json!(-1), json!(0), json!(1.5)],
            _ => vec![],
        };
        for v in values {
            push(Kind::Value, path, format!("= {v}"), Some(v), None);
        }
    }
    if let J::Object(m) = node {
        push(
            Kind::Sibling,
            path,
            "+ no_such_key".into(),
            None,
            Some(("no_such_key", json!("x"))),
        );
        let parent = dotted(&path[..path.len().saturating_sub(1)]);
        if parent == "networks" || parent == "volumes" {
            if m.contains_key("external") {
                push(
                    Kind::Conflict,
                    path,
                    "+ driver".into(),
                    None,
                    Some(("driver", json!("local"))),
                );
                push(
                    Kind::Conflict,
                    path,
                    "+ labels".into(),
                    None,
                    Some(("labels", json!({"a": "b"}))),
                );
                push(
                    Kind::Conflict,
                    path,
                    "+ external.name".into(),
                    None,
                    Some(("external", json!({"name": "other"}))),
                );
            } else {
                push(
                    Kind::Conflict,
                    path,
                    "+ external".into(),
                    None,
                    Some(("external", json!(true))),
                );
            }
            push(
                Kind::Conflict,
                path,
                "+ name, external.name".into(),
                None,
                Some(("name", json!("mine"))),
            );
        }
        if parent == "services" {
            if m.contains_key("networks") {
                push(
                    Kind::Conflict,
                    path,
                    "+ network_mode".into(),
                    None,
                    Some(("network_mode", json!("host"))),
                );
            }
            push(
                Kind::Conflict,
                path,
                "+ scale".into(),
                None,
                Some(("scale", json!(3))),
            );
        }
        for (k, v) in m {
            path.push(Step::Key(k.clone()));
            walk(root, v, path, out);
            path.pop();
        }
    }
    if let J::Array(items) = node {
        for (i, v) in items.iter().enumerate() {
            path.push(Step::Index(i));
            walk(root, v, path, out);
            path.pop();
        }
    }
}

// === the comparison ===

#[derive(Default)]
struct Tally {
    cases: usize,
    /// Cases the oracle refuses.
    refused: usize,
    agree: usize,
    beyond_schema: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn judge(
        &mut self,
        label: &str,
        oracle: Option<String>,
        shoal: Result<(), Vec<SpecError>>,
        m: Option<&Mutation>,
    ) {
        self.cases += 1;
        self.refused += usize::from(oracle.is_some());
        let path = m.map(|m| dotted(&m.path)).unwrap_or_default();
        match (oracle, shoal) {
            (None, Ok(())) => self.agree += 1,
            (Some(why), Err(errors)) => {
                // Located at the mutated node, inside it, or at a mapping that holds it.
                let located = path.is_empty()
                    || errors.iter().any(|e| {
                        e.path == path
                            || e.path.starts_with(&format!("{path}."))
                            || e.path.starts_with(&format!("{path}["))
                            || (!e.path.is_empty() && path.starts_with(&e.path))
                    })
                    || (m.is_some_and(|m| m.kind == Kind::Conflict));
                if located {
                    self.agree += 1;
                } else {
                    self.failures.push(format!(
                        "{label}: refused elsewhere than {path} (Compose: {why}):\n    {}",
                        render(&errors)
                    ));
                }
            }
            (Some(why), Ok(())) => self.failures.push(format!(
                "{label}: shoal accepts what Compose refuses: {why}"
            )),
            (None, Err(errors)) => {
                // The content of a scalar (a value mutation, or a type mutation to a
                // type the schema allows here) judged at that node or its list.
                let parent = m
                    .map(|m| dotted(&m.path[..m.path.len().saturating_sub(1)]))
                    .unwrap_or_default();
                let in_list = m.is_some_and(|m| matches!(m.path.last(), Some(Step::Index(_))));
                let value_check = m.is_some_and(|m| matches!(m.kind, Kind::Value | Kind::Type))
                    && errors
                        .iter()
                        .all(|e| e.path == path || (in_list && e.path == parent));
                if value_check {
                    let key = format!("{}: {}", generic(&path), elide_quoted(&errors[0].message));
                    *self.beyond_schema.entry(key).or_default() += 1;
                } else {
                    self.failures.push(format!(
                        "{label}: shoal refuses what Compose takes:\n    {}",
                        render(&errors)
                    ));
                }
            }
        }
    }
}

/// A message with its quoted parts elided, to count alike messages together.
fn elide_quoted(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "`…`" } else { part })
        .collect()
}

fn render(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// `services.web.ports[0]` as `services.*.ports[]`, to count alike cases together.
fn generic(path: &str) -> String {
    let mut parts: Vec<String> = path.split('.').map(String::from).collect();
    for i in 0..parts.len() {
        if i > 0
            && ["services", "networks", "volumes", "secrets", "configs"]
                .contains(&parts[i - 1].as_str())
        {
            parts[i] = "*".into();
        }
    }
    let joined = parts.join(".");
    let mut out = String::new();
    let mut skip = false;
    for c in joined.chars() {
        match c {
            '[' => {
                out.push_str("[]");
                skip = true;
            }
            ']' => skip = false,
            _ if skip => {}
            c => out.push(c),
        }
    }
    out
}

fn corpus() -> Vec<(PathBuf, String)> {
    let root = shared().join("corpus/awesome-compose");
    let mut files = Vec::new();
    for app in std::fs::read_dir(&root).expect("the shared corpus is beside the repository") {
        let dir = app.unwrap().path();
        if let Some(file) = shoal_spec::load::DEFAULT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.is_file())
        {
            files.push((dir, std::fs::read_to_string(file).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn the_loader_judges_as_the_schema_does() {
    let oracle = Oracle::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    let mut by_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    let corpus = corpus();
    assert!(corpus.len() >= 30, "the corpus has {} files", corpus.len());
    for (dir, text) in &corpus {
        let app = dir.file_name().unwrap().to_string_lossy().to_string();
        let doc = read_doc(text).unwrap_or_else(|e| panic!("{app}: {e}"));
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        tally.judge(
            &app,
            oracle.verdict(&doc),
            shoal(&pretty, dir, tmp.path()),
            None,
        );
        for m in mutations(&doc) {
            let before = (tally.agree, tally.beyond_schema.values().sum::<usize>());
            let label = format!("{app} {} {}", dotted(&m.path), m.what);
            let text = serde_json::to_string_pretty(&m.doc).unwrap();
            tally.judge(
                &label,
                oracle.verdict(&m.doc),
                shoal(&text, dir, tmp.path()),
                Some(&m),
            );
            let after = (tally.agree, tally.beyond_schema.values().sum::<usize>());
            let e = by_kind.entry(m.kind).or_default();
            e.0 += 1;
            e.1 += (after.0 - before.0) + (after.1 - before.1);
        }
    }
    println!("{} cases from {} corpus files:", tally.cases, corpus.len());
    for (kind, (n, ok)) in &by_kind {
        println!("  {kind:?}: {ok} of {n} judged alike");
    }
    let beyond: usize = tally.beyond_schema.values().sum();
    println!(
        "  the oracle refuses {} and takes {}; shoal judges {} of them alike ({:.2} %)",
        tally.refused,
        tally.cases - tally.refused,
        tally.agree + beyond,
        100.0 * (tally.agree + beyond) as f64 / tally.cases as f64
    );
    println!("  of which {beyond} refused by shoal's checks of a value's text, beyond the schema:");
    for (key, n) in &tally.beyond_schema {
        println!("    {n:5}  {key}");
    }
    let shown: Vec<_> = tally.failures.iter().take(40).collect();
    assert!(
        tally.failures.is_empty(),
        "{} disagreements with the schema, the first ones:\n{}",
        tally.failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The cases a new user met, each judged by the oracle and by shoal alike.
#[test]
fn the_cases_users_met_are_judged_as_compose_judges_them() {
    let oracle = Oracle::new();
    let tmp = tempfile::tempdir().unwrap();
    let svc = |extra: &str| format!("services:\n  web:\n    image: x\n{extra}");
    let refused: Vec<(&str, String)> = vec![
        ("a non-string key", "services:\n  123:\n    image: x\n".into()),
        ("external with driver", "services: {}\nnetworks:\n  n:\n    external: true\n    driver: overlay\n".into()),
        ("external with driver_opts", "services: {}\nvolumes:\n  v:\n    external: true\n    driver_opts: {type: nfs}\n".into()),
        ("external with labels", "services: {}\nvolumes:\n  v:\n    external: true\n    labels: {a: b}\n".into()),
        ("name against external.name", "services: {}\nvolumes:\n  v:\n    name: one\n    external:\n      name: two\n".into()),
        ("a negative tmpfs.size", svc("    volumes:\n      - type: tmpfs\n        target: /t\n        tmpfs:\n          size: -1\n")),
        ("a fractional tmpfs.size", svc("    volumes:\n      - type: tmpfs\n        target: /t\n        tmpfs:\n          size: 1.5\n")),
        ("a device count that is a word", svc("    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n              count: two\n")),
        ("a device count beside device_ids", svc("    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n              count: 1\n              device_ids: ['0']\n")),
        ("a device without capabilities", svc("    deploy:\n      resources:\n        reservations:\n          devices:\n            - count: 1\n")),
        ("build.ssh neither a list nor a mapping", "services:\n  web:\n    build:\n      context: .\n      ssh: 7\n".into()),
        ("a numeric project name", "name: 123\nservices:\n  web:\n    image: x\n".into()),
        ("network_mode beside networks", svc("    network_mode: host\n    networks: [default]\n")),
    ];
    let accepted: Vec<(&str, String)> = vec![
        ("build.no_cache_filter", "services:\n  web:\n    build:\n      context: .\n      no_cache_filter: [base]\n".into()),
        ("lifecycle hooks", svc("    post_start:\n      - command: echo started\n    pre_stop:\n      - command: [echo, stopping]\n    pre_start:\n      - command: echo init\n")),
        ("a volume of type image", svc("    volumes:\n      - type: image\n        source: alpine\n        target: /data\n")),
        ("a secret with a driver", "services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    driver: vault\n".into()),
        ("models", "services:\n  web:\n    image: x\n    models: [llm]\nmodels:\n  llm:\n    model: ai/smollm2\n".into()),
        ("several YAML documents", "services:\n  web:\n    image: x\n---\nservices:\n  db:\n    image: y\n".into()),
        ("restart: \"\"", svc("    restart: \"\"\n")),
    ];
    let mut wrong = Vec::new();
    for (what, text) in refused
        .iter()
        .map(|c| (c, true))
        .chain(accepted.iter().map(|c| (c, false)))
    {
        let ((label, yaml), refuse) = (what, text);
        let compose = read_doc(yaml)
            .err()
            .or_else(|| oracle.verdict(&read_doc(yaml).unwrap()));
        let ours = shoal(yaml, tmp.path(), tmp.path());
        if compose.is_some() != refuse {
            wrong.push(format!(
                "{label}: the oracle does not judge it as Compose does: {compose:?}"
            ));
        }
        match (&ours, refuse) {
            (Err(errors), true) => {
                let e = &errors[0];
                assert!(e.mark.line >= 1 && e.mark.col >= 1, "{label}: {e}");
                println!("{label}: refused: {e}");
            }
            (Ok(()), false) => println!("{label}: accepted"),
            (Ok(()), true) => wrong.push(format!("{label}: shoal accepts it")),
            (Err(errors), false) => {
                wrong.push(format!("{label}: shoal refuses it: {}", render(errors)))
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
