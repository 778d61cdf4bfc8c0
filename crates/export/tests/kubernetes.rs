//! Golden files of the Kubernetes export for the example and projects of the shared
//! corpus, each manifest validated offline by `kubernetes-validate` (PyPI; strict, the
//! Kubernetes version the binary is built for). A change of the export shows here as
//! a diff; `SHOAL_BLESS=1 cargo test -p shoal-export --test kubernetes` writes the new
//! files after a deliberate change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use shoal_export::kubernetes::{export, Options};
use shoal_spec::{load, Options as LoadOptions};

/// The Kubernetes version the manifests are written for (`v1_33` in crates/shoal).
const KUBERNETES: &str = "1.33.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cases() -> Vec<(&'static str, PathBuf)> {
    let corpus = root().join("../shared/corpus/awesome-compose");
    let mut cases = vec![("hello", root().join("examples/hello"))];
    for app in [
        "flask-redis",
        "wordpress-mysql",
        "prometheus-grafana",
        "elasticsearch-logstash-kibana",
        "react-express-mongodb",
    ] {
        cases.push((app, corpus.join(app)));
    }
    cases
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn compare(name: &str, text: &str) {
    let path = golden(name);
    if std::env::var_os("SHOAL_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{} differs from the export (SHOAL_BLESS=1 rewrites it):\n{text}",
        path.display()
    );
}

#[test]
fn the_export_matches_its_golden_files_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, dir) in cases() {
        let loaded = load(&LoadOptions {
            working_dir: dir.clone(),
            project_name: Some(name.into()),
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = export(&loaded, &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!m.objects.is_empty(), "{name}");
        compare(&format!("{name}.yaml"), &m.to_yaml());
        let warnings: String = m.warnings.iter().map(|w| format!("{w}\n")).collect();
        compare(&format!("{name}.warnings"), &warnings);
        for o in &m.objects {
            let path = tmp.path().join(format!("{name}-{}", o.file));
            std::fs::write(&path, shoal_spec::output::yaml(&o.object)).unwrap();
            files.push(path);
        }
    }

    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs (scripts/test.sh installs it with pip)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate refused:\n{report}"
    );
    println!(
        "{} manifests valid against Kubernetes {KUBERNETES}",
        files.len()
    );
}

/// The sanity figure: the whole corpus, loaded and exported, well under a second a
/// file (a timing printed, not asserted: speed is for benchmarks).
#[test]
fn the_whole_corpus_exports() {
    let corpus = root().join("../shared/corpus/awesome-compose");
    let (mut exported, mut refused) = (0, Vec::new());
    let start = Instant::now();
    for app in std::fs::read_dir(&corpus).unwrap() {
        let dir = app.unwrap().path();
        let Ok(loaded) = load(&LoadOptions {
            working_dir: dir.clone(),
            ..LoadOptions::default()
        }) else {
            continue;
        };
        match export(&loaded, &Options::default()) {
            Ok(m) => {
                assert!(!m.objects.is_empty());
                exported += 1;
            }
            // Only a secret or config whose file the corpus leaves out may stop it.
            Err(e) => {
                assert!(
                    e.to_string().contains("cannot read"),
                    "{}: {e}",
                    dir.display()
                );
                refused.push(dir.file_name().unwrap().to_string_lossy().to_string());
            }
        }
    }
    let each = start.elapsed() / (exported + refused.len()).max(1) as u32;
    println!(
        "{exported} corpus projects exported, {} refused for missing files ({}), {each:?} each",
        refused.len(),
        refused.join(", ")
    );
    assert!(exported >= 30, "{exported}");
}
