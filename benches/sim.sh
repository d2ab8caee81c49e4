#!/usr/bin/env bash
# The simulation's long campaign (issue 10): many seeds of the deterministic multi-machine
# simulation (src/sim), optimised (profile sim), on every core. Prints one summary line, and
# for each failing seed a one-line reproduction and its last steps.
#   benches/sim.sh [SEEDS [FIRST [STEPS]]]      e.g. benches/sim.sh 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1000000}
first=${2:-1000000}
steps=${3:-80}
S4_SIM_SEEDS=$seeds S4_SIM_FIRST=$first S4_SIM_STEPS=$steps \
    cargo test --profile sim --lib sim::fresh_seeds -- --nocapture 2>&1 | grep -v '^running\|^$'
