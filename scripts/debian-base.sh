#!/usr/bin/env bash
# Makes the Debian base image the example's Dockerfiles start from, when the engine
# does not have it yet. On a machine that reaches a registry this is only a shortcut
# (the engine would pull debian:bookworm-slim itself); on one that reaches nothing but
# Debian's package mirror it is the only way to get the image: debootstrap a minimal
# bookworm into a folder and `docker import` it under the same name.
set -euo pipefail

image="${1:-debian:bookworm-slim}"
suite="${SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if docker pull "$image" >/dev/null 2>&1; then
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap $suite into $root (no registry: building $image locally)" >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
# Keep the image small, as the -slim images are.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  - "$image" >/dev/null
echo "made $image" >&2
