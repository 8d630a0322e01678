#!/usr/bin/env bash
# The one command that installs, builds and brings up the quickstart cluster on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh hafab kvd echo-app
exec ./build/hafab up examples/quickstart.yaml "$@"
