#!/usr/bin/env bash
# Fuzzes the decoder, model cards and speaker profiles (Sources/Fuzz) with libFuzzer for a bounded
# time, starting from the seeds in Tests/FuzzCorpus (first byte: 0 audio, 1 card, 2 profile).
#   Tests/fuzz.sh [SECONDS]        default 300; a finding is saved as .build-fuzz/crash-* and fails the run
# Replay a finding without libFuzzer: swift run Fuzz .build-fuzz/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
swift build -c release --product Fuzz --scratch-path .build-fuzz \
  -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -v '^\[' || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.build-fuzz/release/Fuzz "$work" Tests/FuzzCorpus -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix=.build-fuzz/ -print_final_stats=1
