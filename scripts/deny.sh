#!/usr/bin/env bash
# Supply-chain checks (deny.toml): licenses, banned or wildcard
# dependencies, and that every crate comes from crates.io. Installs
# cargo-deny when it is missing (a few minutes, once per machine). The
# advisory database needs the network, so it is not checked here.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (once per machine)" >&2
  cargo install --locked cargo-deny
fi
# cargo-deny reads the metadata of every platform's crates: fetch them
# first (crates.io), since a build downloads only this platform's.
cargo fetch --locked --quiet
cargo deny --offline check --hide-inclusion-graph licenses bans sources
