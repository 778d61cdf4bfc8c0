//! `shoal export kubernetes` as a user runs it: files or standard output, warnings on
//! standard error, and a clear error for a service that does not exist.

mod common;

use std::process::Command;

fn shoal(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run shoal")
}

#[test]
fn the_example_exports_to_files_and_to_stdout() {
    let hello = common::root().join("examples/hello");
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("k8s");
    let out = shoal(
        &hello,
        &["export", "kubernetes", "-o", target.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "db-service.yaml",
            "db-statefulset.yaml",
            "web-deployment.yaml",
            "web-env-configmap.yaml",
            "web-service.yaml"
        ]
    );
    assert_eq!(listed.len(), names.len());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("warning: compose.yaml:7:12: services.web.build: built here as `hello-web`"),
        "{stderr}"
    );

    // Standard output is the same objects, in the same order, as one stream.
    let stdout = shoal(&hello, &["export", "kubernetes", "--stdout"]);
    assert!(stdout.status.success());
    let stream = String::from_utf8_lossy(&stdout.stdout).into_owned();
    let from_files: Vec<String> = listed
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(stream, from_files.join("---\n"));

    // One service, in a namespace.
    let one = shoal(&hello, &["export", "kubernetes", "db", "-n", "shop"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("namespace: shop") && !text.contains("name: web"),
        "{text}"
    );
}

#[test]
fn an_unknown_service_is_refused_and_nothing_is_written() {
    let hello = common::root().join("examples/hello");
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("k8s");
    let out = shoal(
        &hello,
        &[
            "export",
            "kubernetes",
            "wbe",
            "-o",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no such service: wbe"), "{stderr}");
    assert!(
        stderr.contains("hint: the project's services are web, db"),
        "{stderr}"
    );
    assert!(!target.exists());
}
