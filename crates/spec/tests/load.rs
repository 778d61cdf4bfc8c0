//! The loader against small files written for each case: exact positions and
//! messages for mistakes, and Compose's semantics for the rest.

use std::collections::HashMap;
use std::path::Path;

use shoal_spec::{
    load, Condition, LoadError, Loaded, MountKind, Options, Restart, SpecError, Words,
};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn opts(dir: &Path) -> Options {
    Options {
        working_dir: dir.to_path_buf(),
        environ: HashMap::new(),
        ..Options::default()
    }
}

fn ok(files: &[(&str, &str)]) -> Loaded {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), files);
    load(&opts(tmp.path())).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(files: &[(&str, &str)]) -> Vec<SpecError> {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), files);
    match load(&opts(tmp.path())) {
        Err(LoadError::Invalid(e)) => e,
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(_) => panic!("loaded, but should not have"),
    }
}

fn one_error(text: &str) -> SpecError {
    let mut e = errors(&[("compose.yaml", text)]);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

fn at(e: &SpecError) -> (usize, usize) {
    (e.mark.line, e.mark.col)
}

#[test]
fn unknown_key_points_at_it_and_suggests() {
    let e = one_error("services:\n  web:\n    image: x\n    prots: [\"80:80\"]\n");
    assert_eq!(e.mark.file.as_ref(), "compose.yaml");
    assert_eq!(at(&e), (4, 5));
    assert_eq!(e.path, "services.web");
    assert_eq!(e.message, "unknown key `prots`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `ports`?"));
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:5: services.web: unknown key `prots`\n  hint: did you mean `ports`?"
    );
}

#[test]
fn wrong_type_says_what_was_expected() {
    let e = one_error("services:\n  web:\n    image: x\n    ports: 8080\n");
    assert_eq!(at(&e), (4, 12));
    assert_eq!(e.path, "services.web.ports");
    assert_eq!(e.message, "expected a list, found an integer");

    let e = one_error("services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n");
    assert_eq!(at(&e), (5, 17));
    assert_eq!(e.path, "services.web.deploy.replicas");
    assert_eq!(e.message, "expected a whole number, found `three`");

    let e = one_error(
        "services:\n  web:\n    image: x\n    healthcheck:\n      interval: 10 seconds\n",
    );
    assert_eq!(at(&e), (5, 17));
    assert!(e.message.contains("unknown unit"), "{e}");
}

#[test]
fn bad_port_syntax() {
    let e = one_error("services:\n  web:\n    image: x\n    ports:\n      - \"80:99999\"\n");
    assert_eq!(at(&e), (5, 9));
    assert_eq!(e.path, "services.web.ports[0]");
    assert!(e.message.contains("`99999` is not a port number"), "{e}");
}

#[test]
fn undefined_references() {
    let e =
        one_error("services:\n  web:\n    image: x\n    depends_on: [dbb]\n  db:\n    image: y\n");
    assert_eq!(at(&e), (4, 18));
    assert_eq!(e.message, "`web` depends on undefined service `dbb`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `db`?"));

    let e = one_error("services:\n  web:\n    image: x\n    networks: [front]\n");
    assert_eq!(at(&e), (4, 16));
    assert_eq!(e.message, "service `web` uses undefined network `front`");

    let e = one_error("services:\n  db:\n    image: x\n    volumes:\n      - data:/var/lib/db\n");
    assert_eq!(at(&e), (5, 9));
    assert_eq!(e.message, "service `db` uses undefined volume `data`");

    let e = one_error("services:\n  web:\n    image: x\n    secrets: [token]\n");
    assert_eq!(e.message, "service `web` uses undefined secret `token`");
}

#[test]
fn depends_on_cycle() {
    let e = one_error(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
    );
    assert_eq!(at(&e), (4, 17));
    assert_eq!(e.message, "depends_on cycle: a -> b -> a");
}

#[test]
fn container_name_with_replicas() {
    let e = one_error("services:\n  web:\n    image: x\n    container_name: web\n    scale: 2\n");
    assert_eq!(at(&e), (4, 21));
    assert_eq!(e.message, "`web` has a fixed container_name but 2 replicas");
}

#[test]
fn host_port_claimed_twice() {
    let e = one_error(
        "services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports:\n      - \"127.0.0.1:8080:81\"\n",
    );
    assert_eq!(at(&e), (8, 9));
    assert_eq!(e.path, "services.b.ports");
    assert_eq!(
        e.message,
        "host port 8080/tcp is claimed twice: service `a` publishes it too"
    );
}

#[test]
fn yaml_syntax_error_and_missing_image() {
    let e = one_error("services:\n  web:\n    image: [x\n");
    assert!(e.message.starts_with("invalid YAML"), "{e}");
    let e = one_error("services:\n  web:\n    command: x\n");
    assert_eq!(at(&e), (2, 3));
    assert_eq!(e.message, "service `web` has neither `image` nor `build`");
}

#[test]
fn all_errors_are_reported_in_order() {
    let e = errors(&[(
        "compose.yaml",
        "services:\n  web:\n    imag: x\n  db:\n    image: y\n    restart: sometimes\n",
    )]);
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(at(&e[0]), (2, 3)); // neither image nor build
    assert_eq!(at(&e[1]), (3, 5)); // imag
    assert_eq!(e[2].message, "unknown restart policy `sometimes`");
}

#[test]
fn interpolation_from_env_file_and_shell() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[
            (".env", "PORT=8080\nTAG=from-dotenv\n"),
            (
                "compose.yaml",
                "services:\n  web:\n    image: \"app:${TAG}\"\n    ports: [\"${PORT}:80\"]\n    environment:\n      GREETING: ${GREETING:-hello}\n      COST: $$5\n      EMPTY: ${NOPE}\n",
            ),
        ],
    );
    let mut o = opts(tmp.path());
    o.environ.insert("TAG".into(), "from-shell".into());
    let loaded = load(&o).unwrap();
    let web = &loaded.project.services["web"];
    assert_eq!(web.image, "app:from-shell");
    assert_eq!(web.ports[0].published_port(), Some(8080));
    assert_eq!(web.environment["GREETING"].as_deref(), Some("hello"));
    assert_eq!(web.environment["COST"].as_deref(), Some("$5"));
    assert_eq!(web.environment["EMPTY"].as_deref(), Some(""));
    assert!(loaded.warnings.iter().any(|w| w.contains("NOPE")));
}

#[test]
fn required_variable_error_has_position() {
    let e = one_error("services:\n  web:\n    image: ${IMAGE:?set the image}\n");
    assert_eq!(at(&e), (3, 12));
    assert_eq!(
        e.message,
        "required variable IMAGE is missing a value: set the image"
    );
}

#[test]
fn override_file_and_several_files() {
    let loaded = ok(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: a\n    environment: [A=1]\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  web:\n    environment: {B: '2'}\n    scale: 3\n",
        ),
    ]);
    let web = &loaded.project.services["web"];
    assert_eq!(web.environment.len(), 2);
    assert_eq!(web.deploy.replicas, 3);
    assert_eq!(loaded.files.len(), 2);
}

#[test]
fn extends_same_and_other_file() {
    let loaded = ok(&[
        (
            "compose.yaml",
            "services:\n  base:\n    image: base\n    environment: {A: '1'}\n  web:\n    extends: base\n    environment: {B: '2'}\n  api:\n    extends:\n      file: common/common.yaml\n      service: tmpl\n",
        ),
        ("common/common.yaml", "services:\n  tmpl:\n    build: ./api\n    restart: always\n"),
    ]);
    let web = &loaded.project.services["web"];
    assert_eq!(web.image, "base");
    assert_eq!(web.environment.len(), 2);
    let api = &loaded.project.services["api"];
    assert!(api.build.as_ref().unwrap().context.ends_with("common/api"));
    assert_eq!(api.restart, Some(Restart::Always));
}

#[test]
fn profiles_enable_services() {
    let files = [(
        "compose.yaml",
        "services:\n  web:\n    image: a\n  debug:\n    image: b\n    profiles: [debug]\n",
    )];
    assert_eq!(ok(&files).project.services.len(), 1);
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &files);
    let mut o = opts(tmp.path());
    o.profiles = vec!["debug".into()];
    assert_eq!(load(&o).unwrap().project.services.len(), 2);
}

#[test]
fn project_name_precedence() {
    let files = [(
        "compose.yaml",
        "name: fromfile\nservices:\n  web:\n    image: a\n",
    )];
    assert_eq!(ok(&files).project.name, "fromfile");
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &files);
    let mut o = opts(tmp.path());
    o.environ
        .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
    assert_eq!(load(&o).unwrap().project.name, "fromenv");
    o.project_name = Some("fromflag".into());
    assert_eq!(load(&o).unwrap().project.name, "fromflag");
}

#[test]
fn service_shapes_normalize() {
    let loaded = ok(&[
        ("web.env", "FROM_FILE=yes\n"),
        (
            "compose.yaml",
            r#"
x-common: &common
  restart: on-failure:3
services:
  web:
    <<: *common
    build:
      context: ./web
      args: [VERSION=1]
      target: release
    command: ./serve --port "80 80"
    env_file:
      - web.env
      - path: missing.env
        required: false
    ports:
      - target: 80
        published: "8080"
    expose: [9000]
    volumes:
      - data:/data
      - type: tmpfs
        target: /tmp
    networks:
      back:
        aliases: [www]
    depends_on:
      db: {condition: service_healthy, restart: true}
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
    deploy:
      replicas: 2
      resources: {limits: {cpus: "0.5", memory: 256M}}
      update_config: {order: start-first}
    stop_grace_period: 5s
    cap_add: [NET_ADMIN]
  db:
    image: postgres
    healthcheck:
      disable: true
networks:
  back: {}
volumes:
  data:
"#,
        ),
    ]);
    let p = &loaded.project;
    let web = &p.services["web"];
    assert_eq!(web.image, format!("{}-web", p.name));
    let build = web.build.as_ref().unwrap();
    assert_eq!(build.args["VERSION"], "1");
    assert_eq!(build.target.as_deref(), Some("release"));
    assert_eq!(
        web.command.as_ref().unwrap(),
        &["./serve", "--port", "80 80"]
    );
    assert_eq!(web.environment["FROM_FILE"].as_deref(), Some("yes"));
    assert_eq!(web.restart, Some(Restart::OnFailure(Some(3))));
    assert_eq!(web.ports[0].published_port(), Some(8080));
    assert_eq!(web.volumes[1].kind, MountKind::Tmpfs);
    assert_eq!(web.networks["back"].aliases, vec!["www"]);
    assert_eq!(web.depends_on["db"].condition, Condition::ServiceHealthy);
    assert!(web.depends_on["db"].restart);
    assert_eq!(web.healthcheck.as_ref().unwrap().test[0], "CMD-SHELL");
    assert_eq!(
        web.healthcheck
            .as_ref()
            .unwrap()
            .interval
            .unwrap()
            .as_secs(),
        90
    );
    assert_eq!(web.deploy.replicas, 2);
    assert_eq!(web.deploy.resources.limits.memory, Some(256 << 20));
    assert_eq!(
        web.deploy.update_config.as_ref().unwrap().order,
        Some(shoal_spec::Order::StartFirst)
    );
    assert_eq!(web.other["cap_add"], serde_json::json!(["NET_ADMIN"]));
    assert!(p.services["db"].healthcheck.as_ref().unwrap().disabled());
    assert_eq!(p.volumes["data"].name, format!("{}_data", p.name));
    assert!(p.networks.contains_key("default"));
}

#[test]
fn missing_required_env_file() {
    let e = one_error("services:\n  web:\n    image: a\n    env_file: nope.env\n");
    assert_eq!(at(&e), (4, 15));
    assert!(e.message.starts_with("cannot read env file"), "{e}");
}

#[test]
fn no_file_found() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        load(&opts(tmp.path())),
        Err(LoadError::NotFound { .. })
    ));
}

#[test]
fn x_shoal_lb_is_typed_and_checked() {
    let loaded = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    x-shoal:\n      lb: {strategy: hash, hash_on: \"cookie:session\", retries: 1, timeout: 5s}\n",
    )]);
    let lb = loaded.project.services["web"].x_shoal.lb();
    assert_eq!(
        (
            lb.strategy.as_str(),
            lb.hash_on.as_ref().map(ToString::to_string).as_deref(),
            lb.retries,
        ),
        ("hash", Some("cookie:session"), 1)
    );
    assert_eq!(lb.timeout.as_secs(), 5);

    let e = one_error(
        "services:\n  web:\n    image: a\n    x-shoal:\n      lb: {strategy: leastrequest}\n",
    );
    assert_eq!(at(&e), (5, 22));
    assert_eq!(e.path, "services.web.x-shoal.lb.strategy");
    assert_eq!(
        e.message,
        "`leastrequest` is not one of: least_request, round_robin, hash"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `least_request`?"));

    let e =
        one_error("services:\n  web:\n    image: a\n    x-shoal:\n      lb: {strategy: hash}\n");
    assert_eq!(e.message, "strategy `hash` needs `hash_on`");

    let e = one_error("services:\n  web:\n    image: a\n    x-shoal:\n      lbb: {}\n");
    assert_eq!(e.hint.as_deref(), Some("did you mean `lb`?"));
}

#[test]
fn x_shoal_autoscale_is_typed_and_checked() {
    let loaded = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    x-shoal:\n      autoscale: {min: 2, max: 8, metric: rps}\n",
    )]);
    let a = loaded.project.services["web"]
        .x_shoal
        .autoscale
        .clone()
        .unwrap();
    assert_eq!(
        (a.min, a.max, a.metric.as_str(), a.target),
        (2, 8, "rps", 100.0)
    );
    assert_eq!(a.policy, shoal_spec::Policy::Shoal);

    let e = one_error(
        "services:\n  web:\n    image: a\n    x-shoal:\n      autoscale: {policy: k8s}\n",
    );
    assert_eq!(e.path, "services.web.x-shoal.autoscale.policy");

    let e = one_error(
        "services:\n  web:\n    image: a\n    x-shoal:\n      autoscale: {min: 5, max: 2}\n",
    );
    assert_eq!(at(&e), (5, 18));
    assert_eq!(e.message, "min 5 is above max 2");

    let e = one_error(
        "services:\n  web:\n    image: a\n    x-shoal:\n      autoscale: {metric: concurency}\n",
    );
    assert_eq!(e.path, "services.web.x-shoal.autoscale.metric");
    assert_eq!(e.hint.as_deref(), Some("did you mean `concurrency`?"));

    let e =
        one_error("services:\n  web:\n    image: a\n    x-shoal:\n      autoscale: {target: -1}\n");
    assert!(
        e.message.contains("expected a number") || e.message.contains("above zero"),
        "{e}"
    );
}

#[test]
fn update_config_mistakes_point_at_the_value() {
    let case = |uc: &str| {
        one_error(&format!(
            "services:\n  web:\n    image: x\n    deploy:\n      update_config:\n        {uc}\n"
        ))
    };
    let e = case("order: start_first");
    assert_eq!(at(&e), (6, 16));
    assert_eq!(e.path, "services.web.deploy.update_config.order");
    assert_eq!(
        e.message,
        "`start_first` is not one of: start-first, stop-first"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `start-first`?"));

    let e = case("failure_action: rollbak");
    assert_eq!(
        e.message,
        "`rollbak` is not one of: continue, rollback, pause"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `rollback`?"));

    let e = case("parallelism: -1");
    assert_eq!(e.path, "services.web.deploy.update_config.parallelism");
    assert_eq!(e.message, "-1 is out of range 0..=10000");

    let e = case("monitor: 5x");
    assert_eq!(e.path, "services.web.deploy.update_config.monitor");
    assert!(e.message.contains("5x"), "{}", e.message);

    let e = case("max_failure_ratio: 1.5");
    assert_eq!(e.message, "1.5 is not a ratio");
}

#[test]
fn update_config_keeps_what_is_unset_unset() {
    let loaded = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    deploy:\n      update_config: {parallelism: 2, monitor: 10s}\n      rollback_config: {order: stop-first, failure_action: pause}\n",
    )]);
    let d = &loaded.project.services["web"].deploy;
    let uc = d.update_config.as_ref().unwrap();
    assert_eq!(uc.parallelism, Some(2));
    assert_eq!(uc.monitor, Some(std::time::Duration::from_secs(10)));
    assert_eq!(uc.order, None);
    assert_eq!(uc.failure_action, None);
    let rc = d.rollback_config.as_ref().unwrap();
    assert_eq!(rc.order, Some(shoal_spec::Order::StopFirst));
    assert_eq!(rc.failure_action, Some(shoal_spec::FailureAction::Pause));
    // And the model reads back from its JSON as it was (revisions are kept so).
    let json = serde_json::to_string(&loaded.project).unwrap();
    let back: shoal_spec::Project = serde_json::from_str(&json).unwrap();
    assert_eq!(back.services["web"].deploy.update_config, d.update_config);
}

#[test]
fn x_shoal_update_is_checked_like_the_rest() {
    let e = one_error(
        "services:\n  web:\n    image: x\n    x-shoal:\n      update: {ready_timeout: 5x}\n",
    );
    assert_eq!(e.path, "services.web.x-shoal.update.ready_timeout");
    let e = one_error(
        "services:\n  web:\n    image: x\n    x-shoal:\n      update: {error_ratio: 2}\n",
    );
    assert_eq!(e.message, "2 is not a ratio");
    let e = one_error(
        "services:\n  web:\n    image: x\n    x-shoal:\n      update: {ready_timout: 5s}\n",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `ready_timeout`?"));
    let loaded = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    x-shoal:\n      update: {ready_timeout: 5s, error_ratio: 0.2}\n",
    )]);
    let u = loaded.project.services["web"]
        .x_shoal
        .update
        .clone()
        .unwrap();
    assert_eq!(u.ready_timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(u.error_ratio, Some(0.2));
}

#[test]
fn x_shoal_metrics_is_an_address_or_off() {
    let e = one_error("services:\n  web:\n    image: x\nx-shoal:\n  metrics: 127.0.0.1:99999\n");
    assert_eq!(at(&e), (5, 12));
    assert_eq!(e.path, "x-shoal.metrics");
    assert_eq!(e.message, "`127.0.0.1:99999` is not an address");
    assert_eq!(
        e.hint.as_deref(),
        Some("use IP:PORT, such as 127.0.0.1:9464, or off")
    );
    let e = one_error("services:\n  web:\n    image: x\nx-shoal:\n  metric: off\n");
    assert_eq!(e.hint.as_deref(), Some("did you mean `metrics`?"));
    let on = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\nx-shoal:\n  metrics: localhost:9500\n",
    )]);
    assert_eq!(
        on.project.x_shoal.metrics,
        Some(shoal_spec::MetricsAt::At("127.0.0.1:9500".parse().unwrap()))
    );
    let off = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\nx-shoal: {metrics: \"off\"}\n",
    )]);
    assert_eq!(
        off.project.x_shoal.metrics,
        Some(shoal_spec::MetricsAt::Off)
    );
    let json = serde_json::to_string(&off.project).unwrap();
    assert!(json.contains(r#""x-shoal":{"metrics":"off"}"#), "{json}");
}

#[test]
fn the_legacy_format_is_named_and_an_empty_restart_is_no() {
    let e = one_error("web:\n  image: nginx\n  ports: [\"80:80\"]\ndb:\n  image: postgres\n");
    assert_eq!(at(&e), (1, 1));
    assert_eq!(
        e.message,
        "`web` looks like a service in the legacy Compose file format (version 1), with services at the top level"
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("move the services under a top-level `services:` key (docker compose v2 refuses this format too)")
    );
    let loaded = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    restart: \"\"\n",
    )]);
    assert_eq!(loaded.project.services["web"].restart, Some(Restart::No));
}

#[test]
fn a_duration_too_long_for_any_clock_is_a_located_error() {
    // Found by tests/fuzz.rs: this used to panic inside Duration.
    let e = one_error(
        "services:\n  web:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      timeout: 99999999999999999999910s\n",
    );
    assert_eq!(at(&e).0, 6, "{e}");
    assert!(e.message.contains("too long a duration"), "{e}");
}

#[test]
fn x_shoal_logs_is_typed_and_checked() {
    let l = ok(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    x-shoal:\n      logs: {multiline: '^\\S'}\nx-shoal:\n  logs:\n    max_size: 64M\n    max_age: 48h\n    segment_size: 1M\n    forward:\n      - {type: loki, url: \"http://loki:3100/\"}\n      - {type: elasticsearch, url: \"http://es:9200\", index: logs-shoal}\n",
    )]);
    let logs = l.project.x_shoal.logs();
    assert_eq!((logs.max_size, logs.segment_size), (64 << 20, 1 << 20));
    assert_eq!(logs.max_age.as_secs(), 48 * 3600);
    assert_eq!(logs.forward.len(), 2);
    assert_eq!(logs.forward[0].url, "http://loki:3100");
    assert_eq!(logs.forward[1].index.as_deref(), Some("logs-shoal"));
    let web = &l.project.services["web"];
    assert_eq!(
        web.x_shoal.logs.as_ref().unwrap().multiline.as_deref(),
        Some("^\\S")
    );
    // Defaults when unset.
    let plain = ok(&[("compose.yaml", "services:\n  web:\n    image: x\n")]);
    assert_eq!(plain.project.x_shoal.logs().max_size, 512 << 20);

    let e = one_error(
        "services:\n  web:\n    image: x\n    x-shoal:\n      logs: {multiline: '(unclosed'}\n",
    );
    assert_eq!(at(&e), (5, 25));
    assert_eq!(e.path, "services.web.x-shoal.logs.multiline");
    assert!(e.message.starts_with("not a regular expression"), "{e}");
    let e = one_error("services:\n  web:\n    image: x\nx-shoal:\n  logs:\n    forward:\n      - {type: splunk, url: \"http://s\"}\n");
    assert_eq!(e.path, "x-shoal.logs.forward[0].type");
    assert!(e.message.contains("not one of: loki, elasticsearch"), "{e}");
    let e = one_error("services:\n  web:\n    image: x\nx-shoal:\n  logs: {max_sise: 1G}\n");
    assert_eq!(
        (at(&e), e.message.as_str()),
        ((5, 10), "unknown key `max_sise`")
    );
}
