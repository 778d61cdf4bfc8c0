//! Getting every service its image: built from its `build:` section, or pulled.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use shoal_runtime::{BuildSpec, Runtime};
use shoal_spec::{Project, Service};

/// Builds what is missing (everything with `force`), pulls missing images of services
/// without `build`. `only` limits it to some services.
pub async fn ensure(
    rt: &dyn Runtime,
    project: &Project,
    force: bool,
    only: &[String],
) -> anyhow::Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for svc in project.services.values() {
        if !only.is_empty() && !only.contains(&svc.name) {
            continue;
        }
        if done.contains(&svc.image.as_str()) {
            continue;
        }
        done.push(&svc.image);
        match &svc.build {
            Some(_) if force || !rt.has_image(&svc.image).await? => build(rt, project, svc).await?,
            Some(_) => {}
            None if !rt.has_image(&svc.image).await? => {
                let bar = spinner(format!("{}: pulling {}", svc.name, svc.image));
                let result = rt.pull(&svc.image).await;
                bar.finish_and_clear();
                result
                    .with_context(|| format!("service {} needs image {}", svc.name, svc.image))?;
                eprintln!("{}: pulled {}", svc.name, svc.image);
            }
            None => {}
        }
    }
    Ok(())
}

async fn build(rt: &dyn Runtime, project: &Project, svc: &Service) -> anyhow::Result<()> {
    let b = svc.build.as_ref().expect("called for services with build");
    let mut labels: HashMap<String, String> = b
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(shoal_runtime::LABEL_PROJECT.into(), project.name.clone());
    let spec = BuildSpec {
        image: svc.image.clone(),
        context: b.context.clone().into(),
        dockerfile: b.dockerfile.clone(),
        args: b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        target: b.target.clone(),
        labels,
    };
    let bar = spinner(format!("{}: building {}", svc.name, svc.image));
    let name = svc.name.clone();
    let progress_bar = bar.clone();
    let mut progress = move |line: &str| {
        if line.starts_with("Step ") || line.starts_with("Successfully") {
            progress_bar.set_message(format!("{name}: {}", line.trim()));
        }
    };
    let result = rt.build(&spec, &mut progress).await;
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            eprintln!("{}: built {}", svc.name, svc.image);
            Ok(())
        }
        Err(shoal_runtime::Error::Build {
            image,
            message,
            output,
        }) => {
            eprintln!("{output}");
            anyhow::bail!(
                "building {image} for service {} failed: {message}",
                svc.name
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn spinner(msg: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
