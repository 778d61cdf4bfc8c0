//! Every Compose file of the shared awesome-compose corpus loads, validates and
//! normalizes; the YAML that `shoal config` prints reads back as the same project, and
//! so does its JSON, into the model.

use std::path::{Path, PathBuf};

use shoal_spec::{load, output, Options};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/awesome-compose")
}

#[test]
fn every_awesome_compose_file_loads() {
    let root = corpus();
    let mut seen = 0;
    for app in std::fs::read_dir(&root).expect("the shared corpus is beside the repository") {
        let dir = app.unwrap().path();
        let Some(file) = shoal_spec::load::DEFAULT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.is_file())
        else {
            continue;
        };
        let opts = Options {
            files: vec![file.clone()],
            working_dir: dir.clone(),
            ..Options::default()
        };
        let loaded = load(&opts).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let p = &loaded.project;
        assert!(!p.services.is_empty(), "{}: no services", file.display());
        for svc in p.services.values() {
            assert!(
                !svc.image.is_empty(),
                "{}: {} has no image",
                file.display(),
                svc.name
            );
            assert!(!svc.networks.is_empty() || svc.network_mode.is_some());
        }

        // The printed YAML is itself a Compose file that loads to the same JSON.
        let yaml = output::to_yaml(p);
        let tmp = tempfile::tempdir().unwrap();
        let printed = tmp.path().join("compose.yaml");
        std::fs::write(&printed, &yaml).unwrap();
        let again = load(&Options {
            files: vec![printed],
            working_dir: dir.clone(),
            project_dir: Some(dir.clone()),
            ..Options::default()
        })
        .unwrap_or_else(|e| {
            panic!(
                "{}: printed config does not load: {e}\n{yaml}",
                file.display()
            )
        });
        assert_eq!(
            output::to_json(&again.project),
            output::to_json(p),
            "{}: config output does not read back the same",
            file.display()
        );

        // The JSON reads back into the model unchanged: the control plane keeps
        // revisions this way, and their hashes must survive the trip.
        let json = serde_json::to_string(p).unwrap();
        let back: shoal_spec::Project = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{}: JSON does not read back: {e}", file.display()));
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            json,
            "{}",
            file.display()
        );
        for (name, svc) in &p.services {
            let mut svc2 = back.services[name].clone();
            svc2.name = name.clone();
            assert_eq!(
                svc2.config_hash(),
                svc.config_hash(),
                "{}: {name}",
                file.display()
            );
        }
        seen += 1;
    }
    assert!(seen >= 39, "only {seen} corpus files found");
}
