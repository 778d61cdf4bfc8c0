//! `shoal export kubernetes`: the project as Kubernetes manifests.

use std::process::ExitCode;

use anyhow::Context;
use shoal_export::kubernetes::{self, Exposure, Options};

use crate::cli::{ExportTarget, Global, KubernetesArgs, ServiceType};

pub fn run(global: &Global, target: &ExportTarget) -> anyhow::Result<ExitCode> {
    match target {
        ExportTarget::Kubernetes(args) => to_kubernetes(global, args),
    }
}

fn to_kubernetes(global: &Global, args: &KubernetesArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let opts = Options {
        services: args.services.clone(),
        namespace: args.namespace.clone(),
        exposure: match args.service_type {
            ServiceType::LoadBalancer => Exposure::LoadBalancer,
            ServiceType::NodePort => Exposure::NodePort,
        },
    };
    let manifests = kubernetes::export(&loaded, &opts)?;
    for w in &manifests.warnings {
        eprintln!("warning: {w}");
    }
    match &args.output {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for m in &manifests.objects {
                let path = dir.join(&m.file);
                std::fs::write(&path, shoal_spec::output::yaml(&m.object))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
        }
        None => print!("{}", manifests.to_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}
