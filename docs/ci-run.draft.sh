#!/usr/bin/env bash
# Proposed .ci/run (draft for the lead): every test on a clean clone of main.
#
# Runs as root on a fresh Debian 12 machine with Go (>= 1.24) and Python 3.11; reaches
# Debian's packages, PyPI and the Go module proxy, nothing else. Budget: 90 minutes,
# including the cold build of the Kubernetes binaries (cached afterwards under
# ~/.cache/taskflow-cluster) and of the operator's Python base image (cached in buildah's
# storage).
#
# The test command is the README's: `python3 -m pip install nox && nox`
# (lint + types, unit, integration, e2e).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export PIP_BREAK_SYSTEM_PACKAGES=1  # Debian's own python3 is "externally managed"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

start=$SECONDS
phase() { printf '\n=== [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

cleanup() {
    # A cluster the tests started is stopped by their own fixtures; this only catches a
    # run that was killed half-way.
    if [ -d .cluster ]; then
        nox -s cluster -- down || true
    fi
}
trap cleanup EXIT

phase "system packages"
apt-get update
# The cluster harness's packages, plus what builds the operator image:
# buildah (OCI builds), mmdebstrap (the Debian Python base image), uidmap (buildah).
# shellcheck disable=SC2046
apt-get install -y --no-install-recommends \
    $(grep -v '^\s*#' tests/cluster/apt-packages.txt) \
    buildah mmdebstrap uidmap \
    python3-pip python3-venv git

phase "nox"
python3 -m pip install --quiet nox
go version
python3 --version

phase "nox (lint, unit, integration, e2e)"
hash -r
nox

phase "done in $((SECONDS - start))s"
