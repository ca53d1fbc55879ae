#!/usr/bin/env bash
# The release job: builds the Engage extension from a clean checkout, reproducibly, and checks it.
#
#   ci/release.sh [OUT_DIR]        (default: target/release-dist)
#
# SOURCE_DATE_EPOCH defaults to the last commit's time, so every clone of the same commit yields
# the same archives. The stat cache is not trusted (a fresh checkout has new mtimes anyway).
# Prints the dist summary as JSON on stdout; exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/release-dist}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
cargo xtask dist --out "$out" --no-cache --json
(cd "$out" && sha256sum --check --strict --quiet SHA256SUMS)
python3 ci/check_extension.py "$out" >&2
