#!/usr/bin/env bash
# The whole test suite, the README's test command and what CI runs.
#
# Starts the services the tests need (see scripts/services.sh once there are
# any), then runs every test, including those marked
# `#[ignore = "needs services: scripts/test.sh"]`. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The tests read the public corpus beside the repository.
if [ ! -d ../shared/data ]; then
  echo "error: ../shared/data is missing (the test corpus lives beside the repository)" >&2
  exit 1
fi

if [ -x scripts/services.sh ]; then
  scripts/services.sh start
  trap 'scripts/services.sh stop' EXIT
fi

# Licenses, bans and sources of every dependency (deny.toml).
scripts/deny.sh

# One test at a time: the Kafka tests kill and restart consumers against one
# shared broker and time out group sessions; beside each other on two cores
# they fail by timing, not by what they check.
cargo test --locked -- --include-ignored --test-threads=1
