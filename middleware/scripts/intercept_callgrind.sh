#!/bin/sh
# Instructions per round trip of the intercept bench's actor pair, under callgrind.
# Usage (from the workspace root): middleware/scripts/intercept_callgrind.sh [config...]
# Prints, for each configuration, (Ir(N2) - Ir(N1)) / (N2 - N1): setup and teardown cancel out.
set -eu
N1=${N1:-2000}
N2=${N2:-22000}
OUT=${OUT:-/tmp/intercept-callgrind}
mkdir -p "$OUT"
cargo build --release -q -p actix-coord --example intercept_profile
BIN=target/release/examples/intercept_profile
[ $# -gt 0 ] || set -- plain lamport vector16 all16 explicit
for c in "$@"; do
  for n in $N1 $N2; do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$c.$n" "$BIN" "$c" "$n" >/dev/null 2>&1
  done
  a=$(sed -n 's/^summary: //p' "$OUT/cg.$c.$N1")
  b=$(sed -n 's/^summary: //p' "$OUT/cg.$c.$N2")
  echo "$c $(( (b - a) / (N2 - N1) ))"
done
