//! Checks across the whole project: references resolve, `depends_on` has no cycle,
//! no two services claim one host port, a fixed container name runs one replica.

use indexmap::IndexMap;

use crate::convert::closest;
use crate::error::SpecError;
use crate::load::service_path;
use crate::model::{MountKind, Network, Project, Service};
use crate::yaml::{Mark, Node, Value};

/// Validates `project`, adding the implicit `default` network where it is used.
pub fn check(
    project: &mut Project,
    disabled: &IndexMap<String, Service>,
    services_node: &Node,
    errors: &mut Vec<SpecError>,
    warnings: &mut Vec<String>,
) {
    let names: Vec<&str> = project.services.keys().map(String::as_str).collect();
    let mut uses_default = false;
    for (name, svc) in &project.services {
        let node = services_node.get(name).unwrap_or(services_node);
        let at = |key: &str, item: &str| locate(node.get(key).unwrap_or(node), item);

        for (dep, d) in &svc.depends_on {
            if project.services.contains_key(dep) {
                continue;
            }
            let path = service_path(name, "depends_on");
            if let Some(off) = disabled.get(dep) {
                let e = SpecError::new(
                    at("depends_on", dep),
                    path,
                    format!("`{name}` depends on `{dep}`, which is not enabled"),
                )
                .hint(format!(
                    "enable it with --profile {}",
                    off.profiles.join(" or --profile ")
                ));
                errors.push(e);
            } else if !d.required {
                warnings.push(format!(
                    "{name}: optional dependency `{dep}` is not defined"
                ));
            } else {
                let mut e = SpecError::new(
                    at("depends_on", dep),
                    path,
                    format!("`{name}` depends on undefined service `{dep}`"),
                );
                if let Some(best) = closest(dep, &names) {
                    e = e.hint(format!("did you mean `{best}`?"));
                }
                errors.push(e);
            }
        }

        for net in svc.networks.keys() {
            if net == "default" && !project.networks.contains_key("default") {
                uses_default = true;
                continue;
            }
            if !project.networks.contains_key(net) {
                let known: Vec<&str> = project.networks.keys().map(String::as_str).collect();
                let mut e = SpecError::new(
                    at("networks", net),
                    service_path(name, "networks"),
                    format!("service `{name}` uses undefined network `{net}`"),
                );
                e = match closest(net, &known) {
                    Some(best) => e.hint(format!("did you mean `{best}`?")),
                    None => e.hint(format!(
                        "declare it under the top-level `networks:` as `{net}: {{}}`"
                    )),
                };
                errors.push(e);
            }
        }

        for m in &svc.volumes {
            let (MountKind::Volume, Some(src)) = (m.kind, &m.source) else {
                continue;
            };
            if !project.volumes.contains_key(src) {
                let known: Vec<&str> = project.volumes.keys().map(String::as_str).collect();
                let mut e = SpecError::new(
                    at("volumes", src),
                    service_path(name, "volumes"),
                    format!("service `{name}` uses undefined volume `{src}`"),
                );
                e = match closest(src, &known) {
                    Some(best) => e.hint(format!("did you mean `{best}`?")),
                    None => e.hint(format!("declare it under the top-level `volumes:` as `{src}: {{}}`, or write a path (./{src}) for a bind mount")),
                };
                errors.push(e);
            }
        }

        for (kind, refs, declared) in [
            ("secret", &svc.secrets, &project.secrets),
            ("config", &svc.configs, &project.configs),
        ] {
            for r in refs {
                if !declared.contains_key(&r.source) {
                    let key = format!("{kind}s");
                    errors.push(
                        SpecError::new(
                            at(&key, &r.source),
                            service_path(name, &key),
                            format!("service `{name}` uses undefined {kind} `{}`", r.source),
                        )
                        .hint(format!(
                            "declare it under the top-level `{kind}s:` with `file:`"
                        )),
                    );
                }
            }
        }

        for (kind, refs, declared) in [
            ("secret", &svc.secrets, &project.secrets),
            ("config", &svc.configs, &project.configs),
        ] {
            for r in refs {
                if declared
                    .get(&r.source)
                    .is_some_and(|o| o.file.is_none() && !o.external)
                {
                    warnings.push(format!(
                        "{name}: {kind} `{}` is not mounted: shoal mounts file-based {kind}s only",
                        r.source
                    ));
                }
            }
        }

        if svc.container_name.is_some() && svc.deploy.replicas > 1 {
            let n = node.get("container_name").unwrap_or(node);
            errors.push(
                SpecError::new(
                    n.mark.clone(),
                    service_path(name, "container_name"),
                    format!(
                        "`{name}` has a fixed container_name but {} replicas",
                        svc.deploy.replicas
                    ),
                )
                .hint("container names are unique: remove container_name to run several replicas"),
            );
        }
    }

    if uses_default {
        project.networks.insert(
            "default".into(),
            Network {
                name: format!("{}_default", project.name),
                ..Network::default()
            },
        );
    }

    cycles(project, services_node, errors);
    port_conflicts(project, services_node, errors);
}

fn cycles(project: &Project, services_node: &Node, errors: &mut Vec<SpecError>) {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: IndexMap<&str, u8> = project.services.keys().map(|k| (k.as_str(), 0)).collect();
    fn visit<'p>(
        name: &'p str,
        project: &'p Project,
        state: &mut IndexMap<&'p str, u8>,
        path: &mut Vec<&'p str>,
    ) -> Option<Vec<&'p str>> {
        match state.get(name) {
            Some(1) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            Some(2) | None => return None,
            _ => {}
        }
        state.insert(name, 1);
        path.push(name);
        for dep in project.services[name].depends_on.keys() {
            if let Some(c) = visit(dep, project, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(name, 2);
        None
    }
    for name in project.services.keys() {
        if let Some(cycle) = visit(name, project, &mut state, &mut Vec::new()) {
            let first = cycle[0];
            let node = services_node.get(first).unwrap_or(services_node);
            let n = node.get("depends_on").unwrap_or(node);
            errors.push(
                SpecError::new(
                    n.mark.clone(),
                    service_path(first, "depends_on"),
                    format!("depends_on cycle: {}", cycle.join(" -> ")),
                )
                .hint("services cannot wait for each other: remove one of these dependencies"),
            );
            return;
        }
    }
}

fn port_conflicts(project: &Project, services_node: &Node, errors: &mut Vec<SpecError>) {
    let mut claimed: Vec<(&str, &crate::model::Port, (u16, u16))> = Vec::new();
    for (name, svc) in &project.services {
        for port in &svc.ports {
            let Some(range) = port.published_range() else {
                continue;
            };
            let clash = claimed.iter().find(|(_, p, r)| {
                p.protocol == port.protocol
                    && (p.host_ip == port.host_ip
                        || p.host_ip.is_empty()
                        || port.host_ip.is_empty()
                        || p.host_ip == "0.0.0.0"
                        || port.host_ip == "0.0.0.0")
                    && r.0 <= range.1
                    && range.0 <= r.1
            });
            if let Some((other, p, _)) = clash {
                let node = services_node
                    .get(name)
                    .and_then(|n| n.get("ports"))
                    .unwrap_or(services_node);
                let published = port.published.as_deref().unwrap_or_default();
                let mark = locate_port(node, published);
                let whom = if *other == name.as_str() {
                    "it already publishes it".to_string()
                } else {
                    format!("service `{other}` publishes it too")
                };
                errors.push(
                    SpecError::new(mark, service_path(name, "ports"), format!("host port {}/{} is claimed twice: {whom}", p.published.as_deref().unwrap_or_default(), port.protocol))
                        .hint("give each service its own host port; shoal spreads one port over all replicas of a service"),
                );
            } else {
                claimed.push((name, port, range));
            }
        }
    }
}

/// The position of `item` in a list of names or a mapping keyed by names; the
/// container's position when it is not there.
fn locate(container: &Node, item: &str) -> Mark {
    match &container.value {
        Value::Seq(items) => items
            .iter()
            .find(|n| {
                n.as_str() == Some(item)
                    || n.as_str()
                        .is_some_and(|s| s.starts_with(&format!("{item}:")))
                    || n.get("source").and_then(Node::as_str) == Some(item)
            })
            .map(|n| n.mark.clone()),
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == item)
            .map(|(k, _)| k.mark.clone()),
        Value::Scalar { .. } => None,
    }
    .unwrap_or_else(|| container.mark.clone())
}

fn locate_port(ports: &Node, published: &str) -> Mark {
    ports
        .as_seq()
        .and_then(|items| {
            items.iter().rev().find(|n| match n.as_str() {
                Some(s) => s.contains(published),
                None => n.get("published").and_then(Node::as_str) == Some(published),
            })
        })
        .map(|n| n.mark.clone())
        .unwrap_or_else(|| ports.mark.clone())
}
