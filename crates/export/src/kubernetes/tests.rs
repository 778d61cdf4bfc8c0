//! Mappings of whole projects; the probes and the scaling have their own next to them.

use std::collections::HashMap;

use serde_json::Value;
use shoal_spec::{load as load_project, Loaded, Options as LoadOptions};

use super::*;

/// Loads a compose file given as text.
pub fn load(yaml: &str) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    load_project(&LoadOptions {
        files: vec![file],
        working_dir: dir.path().to_path_buf(),
        project_name: Some("t".into()),
        environ: HashMap::new(),
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(m: &Manifests) -> Vec<String> {
    m.objects.iter().map(|o| o.file.clone()).collect()
}

fn find<'a>(m: &'a Manifests, file: &str) -> &'a Value {
    &m.objects
        .iter()
        .find(|o| o.file == file)
        .unwrap_or_else(|| panic!("no {file} in {:?}", kinds(m)))
        .object
}

#[test]
fn a_service_with_a_volume_of_its_own_is_a_stateful_set() {
    let l = load(
        "services:\n  web:\n    image: w\n    ports: [\"8080:80\"]\n    depends_on: [db]\n  db:\n    image: postgres\n    expose: [\"5432\"]\n    volumes: [data:/var/lib/postgresql/data]\nvolumes:\n  data: {}\n",
    );
    let m = export(&l, &Options::default()).unwrap();
    assert_eq!(
        kinds(&m),
        [
            "db-service.yaml",
            "web-service.yaml",
            "db-statefulset.yaml",
            "web-deployment.yaml"
        ]
    );
    let db = find(&m, "db-statefulset.yaml");
    assert_eq!(db["spec"]["serviceName"], "db");
    assert_eq!(
        db["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    assert_eq!(
        db["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/lib/postgresql/data"
    );
    // The dependency is waited for at its Service's port.
    let web = find(&m, "web-deployment.yaml");
    let init = &web["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "wait-for-db");
    assert!(
        init["command"][2]
            .as_str()
            .unwrap()
            .contains("nc -z -w 1 db 5432"),
        "{init}"
    );
    // Published ports are a load balancer; the rest stays inside.
    assert_eq!(find(&m, "web-service.yaml")["spec"]["type"], "LoadBalancer");
    assert_eq!(
        find(&m, "web-service.yaml")["spec"]["ports"][0]["port"],
        8080
    );
    assert_eq!(
        find(&m, "web-service.yaml")["spec"]["ports"][0]["targetPort"],
        80
    );
    assert_eq!(find(&m, "db-service.yaml")["spec"]["type"], "ClusterIP");
}

#[test]
fn a_shared_volume_is_one_claim_and_a_service_without_ports_is_headless() {
    let l = load(
        "services:\n  a:\n    image: a\n    volumes: [shared:/s]\n  b:\n    image: b\n    volumes: [shared:/s]\nvolumes:\n  shared: {}\n",
    );
    let m = export(
        &l,
        &Options {
            namespace: Some("prod".into()),
            exposure: Exposure::NodePort,
            ..Options::default()
        },
    )
    .unwrap();
    let claim = find(&m, "shared-persistentvolumeclaim.yaml");
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(claim["metadata"]["namespace"], "prod");
    let a = find(&m, "a-deployment.yaml");
    assert_eq!(
        a["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "shared"
    );
    assert_eq!(find(&m, "a-service.yaml")["spec"]["clusterIP"], "None");
    assert!(
        m.warnings.iter().any(|w| w.contains("ReadWriteMany")),
        "{:?}",
        m.warnings
    );
}

#[test]
fn what_has_no_equivalent_is_a_located_warning() {
    let l = load(
        "services:\n  web:\n    image: w\n    network_mode: host\n    privileged: true\n    volumes: [\"/etc:/host-etc:ro\"]\n    restart: \"no\"\n",
    );
    let m = export(&l, &Options::default()).unwrap();
    for (what, line) in [
        ("network_mode", 4),
        ("privileged", 5),
        ("bind mount", 6),
        ("always restarted", 7),
    ] {
        let w = m
            .warnings
            .iter()
            .find(|w| w.contains(what))
            .unwrap_or_else(|| panic!("no warning about {what}: {:?}", m.warnings));
        assert!(w.contains(&format!("compose.yaml:{line}:")), "{w}");
    }
    let c = &find(&m, "web-deployment.yaml")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(c.get("volumeMounts").is_none(), "{c}");
}

#[test]
fn environment_configs_and_secrets_become_objects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "debug = true\n").unwrap();
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web:\n    image: w\n    environment: {MODE: prod}\n    configs: [app]\n    secrets: [pw]\n    deploy:\n      resources:\n        limits: {cpus: '1.5', memory: 512M}\n        reservations: {memory: 128M}\nconfigs:\n  app: {file: ./app.conf}\nsecrets:\n  pw: {file: ./pw.txt}\n",
    )
    .unwrap();
    let l = load_project(&LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        working_dir: dir.path().to_path_buf(),
        project_name: Some("t".into()),
        ..LoadOptions::default()
    })
    .unwrap();
    let m = export(&l, &Options::default()).unwrap();
    assert_eq!(find(&m, "web-env-configmap.yaml")["data"]["MODE"], "prod");
    assert_eq!(
        find(&m, "app-configmap.yaml")["data"]["app.conf"],
        "debug = true\n"
    );
    assert_eq!(find(&m, "pw-secret.yaml")["data"]["pw.txt"], "czNjcmV0");
    let c = &find(&m, "web-deployment.yaml")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "web-env");
    assert_eq!(c["resources"]["limits"]["cpu"], "1500m");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(c["resources"]["requests"]["memory"], "128Mi");
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts
        .iter()
        .any(|v| v["mountPath"] == "/run/secrets/pw" && v["subPath"] == "pw.txt"));
    assert!(mounts
        .iter()
        .any(|v| v["mountPath"] == "/app" && v["subPath"] == "app.conf"));
}

#[test]
fn an_unknown_service_is_an_error() {
    let l = load("services:\n  web:\n    image: w\n");
    let e = export(
        &l,
        &Options {
            services: vec!["wbe".into()],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no such service: wbe\n  hint: the project's services are web"
    );
}

#[test]
fn an_autoscaled_service_leaves_its_replicas_to_the_autoscaler() {
    let l = load(
        "services:\n  web:\n    image: w\n    deploy: {replicas: 3}\n    x-shoal:\n      autoscale: {min: 2, max: 8, metric: cpu}\n",
    );
    let m = export(&l, &Options::default()).unwrap();
    assert!(find(&m, "web-deployment.yaml")["spec"]
        .get("replicas")
        .is_none());
    assert_eq!(
        find(&m, "web-horizontalpodautoscaler.yaml")["spec"]["maxReplicas"],
        8
    );
    let plain = load("services:\n  web:\n    image: w\n    deploy: {replicas: 3}\n");
    let m = export(&plain, &Options::default()).unwrap();
    assert_eq!(find(&m, "web-deployment.yaml")["spec"]["replicas"], 3);
}
