//! Merging Compose files (`-f a -f b`, overrides, `extends`), with Compose's rules:
//! mappings merge key by key; `command`, `entrypoint` and `healthcheck.test` are
//! replaced; `environment`, `labels` and other dictionaries merge by name whichever
//! form they are written in; `volumes` merge by container path, `secrets`/`configs` by
//! source; other sequences append what is new. `!reset` drops an inherited value and
//! `!override` replaces it whole.

use crate::syntax;
use crate::yaml::{Key, Node, Value};

/// Keys, by their path below a service, whose value replaces the inherited one.
const REPLACED: &[&str] = &["command", "entrypoint", "healthcheck.test"];

/// Keys, by their path below a service, that are dictionaries in either form.
const DICTS: &[&str] = &[
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "extra_hosts",
    "build.args",
    "build.labels",
    "deploy.labels",
];

/// Merges a whole file over the accumulated one.
pub fn merge_files(base: &mut Node, over: Node) {
    let Value::Map(entries) = over.value else {
        return;
    };
    for (key, value) in entries {
        if key.name == "services" {
            let services = match base.get_mut("services") {
                Some(s) => s,
                None => {
                    base.set("services", Node::map(value.mark.clone()));
                    base.get_mut("services").expect("just set")
                }
            };
            let Value::Map(over_services) = value.value else {
                // A malformed `services` replaces, and the typing step reports it.
                *services = value;
                continue;
            };
            for (name, svc) in over_services {
                merge_entry(services, name, svc, "");
            }
        } else {
            merge_entry(base, key, value, "#top");
        }
    }
}

/// Merges a service definition over the one it extends.
pub fn merge_service(base: &mut Node, over: Node) {
    // Any name will do: the rules look at the path below the service.
    merge_into(base, over, "service");
}

fn merge_entry(parent: &mut Node, key: Key, value: Node, path: &str) {
    let child_path = if path.is_empty() {
        key.name.clone()
    } else {
        format!("{path}.{}", key.name)
    };
    if value.tag.as_deref() == Some("reset") {
        parent.remove(&key.name);
        return;
    }
    match parent.get_mut(&key.name) {
        Some(existing) if value.tag.as_deref() != Some("override") => {
            merge_into(existing, value, &child_path)
        }
        _ => {
            let mut value = value;
            value.tag = None;
            if let Value::Map(entries) = &mut parent.value {
                if let Some(slot) = entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    slot.1 = value;
                } else {
                    entries.push((key, value));
                }
            }
        }
    }
}

/// `path` is the key path below a service (`healthcheck.test`), or starts with `#top`
/// for top-level objects, or is empty for a whole service.
fn merge_into(base: &mut Node, over: Node, path: &str) {
    // A service's own path: strip the service name for the rules above.
    let rule = path.split_once('.').map(|(_, r)| r).unwrap_or("");
    let in_service = !path.starts_with("#top");
    if in_service && REPLACED.contains(&rule) {
        *base = over;
        return;
    }
    let over = if in_service && DICTS.contains(&rule) {
        to_dict(base);
        let mut o = over;
        to_dict(&mut o);
        o
    } else {
        over
    };
    if in_service
        && matches!(rule, "depends_on" | "networks")
        && (base.as_map().is_some() || over.as_map().is_some())
    {
        seq_to_map(base);
        let mut o = over;
        seq_to_map(&mut o);
        return merge_maps(base, o, path);
    }
    match (&mut base.value, over.value) {
        (Value::Map(_), over_value @ Value::Map(_)) => {
            let over = Node {
                value: over_value,
                mark: over.mark,
                tag: None,
            };
            merge_maps(base, over, path)
        }
        (Value::Seq(items), Value::Seq(new)) => {
            for item in new {
                let same = |existing: &Node| match rule {
                    "volumes" => {
                        mount_target(existing).is_some()
                            && mount_target(existing) == mount_target(&item)
                    }
                    "secrets" | "configs" => ref_source(existing) == ref_source(&item),
                    _ => scalar_eq(existing, &item),
                };
                match items.iter().position(same) {
                    Some(at) => items[at] = item,
                    None => items.push(item),
                }
            }
        }
        (_, value) => {
            *base = Node {
                value,
                mark: over.mark,
                tag: None,
            }
        }
    }
}

fn merge_maps(base: &mut Node, over: Node, path: &str) {
    if let Value::Map(entries) = over.value {
        for (k, v) in entries {
            merge_entry(base, k, v, path);
        }
    }
}

fn scalar_eq(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Scalar { text: x, .. }, Value::Scalar { text: y, .. }) => x == y,
        _ => false,
    }
}

/// The container path of a `volumes` entry, in either syntax.
fn mount_target(n: &Node) -> Option<String> {
    if let Some(t) = n.get("target") {
        return t.as_str().map(str::to_string);
    }
    let text = n.as_str()?;
    syntax::short_volume(text, std::path::Path::new("/"))
        .ok()
        .map(|m| m.target)
}

fn ref_source(n: &Node) -> Option<String> {
    n.as_str()
        .or_else(|| n.get("source").and_then(Node::as_str))
        .map(str::to_string)
}

/// Rewrites a `NAME=value` list as a mapping, in place.
fn to_dict(node: &mut Node) {
    let Value::Seq(items) = &node.value else {
        return;
    };
    let mut entries = Vec::new();
    for item in items {
        let Some(text) = item.as_str() else {
            return; // malformed: left for the typing step to report
        };
        let (k, v) = match text.split_once('=') {
            Some((k, v)) => (k, Node::scalar(v, item.mark.clone())),
            None => (text, Node::scalar("", item.mark.clone())),
        };
        entries.push((Key::new(k, item.mark.clone()), v));
    }
    node.value = Value::Map(entries);
}

/// Rewrites a list of names as a mapping of names to null, in place.
fn seq_to_map(node: &mut Node) {
    let Value::Seq(items) = &node.value else {
        return;
    };
    let mut entries = Vec::new();
    for item in items {
        let Some(text) = item.as_str() else {
            return;
        };
        entries.push((
            Key::new(text, item.mark.clone()),
            Node::scalar("", item.mark.clone()),
        ));
    }
    node.value = Value::Map(entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use std::sync::Arc;

    fn merged(a: &str, b: &str) -> Node {
        let mut base = parse(&Arc::from("a.yaml"), a).unwrap();
        merge_files(&mut base, parse(&Arc::from("b.yaml"), b).unwrap());
        base
    }

    fn svc(n: &Node) -> &Node {
        n.get("services").unwrap().get("web").unwrap()
    }

    #[test]
    fn environment_merges_across_forms() {
        let n = merged(
            "services: {web: {image: a, environment: [A=1, B=2]}}",
            "services: {web: {environment: {B: 3, C: 4}}}",
        );
        let env = svc(&n).get("environment").unwrap();
        assert_eq!(env.get("A").unwrap().as_str(), Some("1"));
        assert_eq!(env.get("B").unwrap().as_str(), Some("3"));
        assert_eq!(env.get("C").unwrap().as_str(), Some("4"));
    }

    #[test]
    fn command_is_replaced_ports_appended_volumes_by_target() {
        let n = merged(
            "services: {web: {image: a, command: [a, b], ports: ['80:80'], volumes: ['x:/data', '/cache']}}",
            "services: {web: {command: [c], ports: ['443:443'], volumes: ['y:/data']}}",
        );
        let s = svc(&n);
        assert_eq!(s.get("command").unwrap().as_seq().unwrap().len(), 1);
        assert_eq!(s.get("ports").unwrap().as_seq().unwrap().len(), 2);
        let vols = s.get("volumes").unwrap().as_seq().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0].as_str(), Some("y:/data"));
    }

    #[test]
    fn reset_and_override() {
        let n = merged(
            "services: {web: {image: a, ports: ['80:80'], labels: {a: '1'}}}",
            "services: {web: {ports: !reset [], labels: !override {b: '2'}}}",
        );
        let s = svc(&n);
        assert!(s.get("ports").is_none());
        let labels = s.get("labels").unwrap();
        assert!(labels.get("a").is_none());
        assert_eq!(labels.get("b").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn depends_on_list_and_map() {
        let n = merged(
            "services: {web: {image: a, depends_on: [db]}}",
            "services: {web: {depends_on: {cache: {condition: service_healthy}}}}",
        );
        let deps = svc(&n).get("depends_on").unwrap();
        assert!(deps.get("db").is_some());
        assert!(deps.get("cache").unwrap().get("condition").is_some());
    }
}
