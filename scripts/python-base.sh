#!/usr/bin/env bash
# Makes the Python base image examples/flask's Dockerfile starts from, when the engine
# does not have it yet. With a registry the engine pulls the official image and this
# is a shortcut; with none (only Debian's mirror and PyPI reachable) it builds an image
# under the same name and tag from the Debian base (scripts/debian-base.sh): Debian's
# Python 3.11 and pip, `python` and `pip` on the PATH as in the official image, and
# pip allowed to install into it (Debian marks its Python externally managed; the
# official image has no such marker). The machine's own extra CAs
# (/usr/local/share/ca-certificates: a proxy's, where egress goes through one) are
# trusted inside too, so that pip reaches PyPI from the build as it does from here.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-python:3.11-slim}"

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if docker pull "$image" >/dev/null 2>&1; then
  exit 0
fi
bash scripts/debian-base.sh
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir "$context/certs"
cp /usr/local/share/ca-certificates/*.crt "$context/certs/" 2>/dev/null || true
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && update-ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip \
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1
CMD ["python3"]
DOCKERFILE
echo "no registry: building $image locally from debian:bookworm-slim" >&2
docker build -q -t "$image" "$context" >/dev/null
echo "made $image" >&2
