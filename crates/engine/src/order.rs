//! The order services start in: a service after everything it depends on.

use shoal_spec::Project;

/// Service names, dependencies first; ties keep file order. The loader has already
/// refused cycles.
pub fn start_order(project: &Project) -> Vec<String> {
    let mut done: Vec<String> = Vec::with_capacity(project.services.len());
    while done.len() < project.services.len() {
        let before = done.len();
        for (name, svc) in &project.services {
            if done.contains(name) {
                continue;
            }
            let ready = svc
                .depends_on
                .keys()
                .all(|d| done.contains(d) || !project.services.contains_key(d));
            if ready {
                done.push(name.clone());
            }
        }
        if done.len() == before {
            // A cycle slipped through: append the rest in file order.
            for name in project.services.keys() {
                if !done.contains(name) {
                    done.push(name.clone());
                }
            }
        }
    }
    done
}
