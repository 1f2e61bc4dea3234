#!/usr/bin/env bash
# Live CPU share of `listen` replaying in real time: alone, and serving with 10 SSE clients attached
# (issue goal: at most 3 % of one core). Usage: Tests/bench-serve.sh [RAVDESS-DIR]; takes ~2.5 minutes.
set -euo pipefail
err=$(mktemp)
trap 'rm -f "$err"' EXIT
cd "$(dirname "$0")/.."
files=$(ls "${1:-../shared/data/ravdess}"/Actor_0*/*.flac | head -400)
for mode in alone serve; do
  extra=(); [ $mode = serve ] && extra=(--serve 127.0.0.1:0)
  .build/release/emotion-monitor listen --headless --log /dev/null --replay $files "${extra[@]}" 2>"$err" &
  pid=$!
  sleep 3
  if [ $mode = serve ]; then
    url=$(grep -o "http://[^ ]*" "$err" | tail -1)
    for i in $(seq 10); do curl -sN "${url}events" > /dev/null & done
  fi
  sleep 5
  t0=$(awk '{print $14+$15}' /proc/$pid/stat); s0=$(date +%s.%N)
  sleep 60
  t1=$(awk '{print $14+$15}' /proc/$pid/stat); s1=$(date +%s.%N)
  rss=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  clients=""; [ $mode = serve ] && clients=$(curl -s "${url}metrics" | grep "^emotion_monitor_sse_clients ")
  awk -v m="$mode" -v t="$((t1 - t0))" -v s0="$s0" -v s1="$s1" -v r="$((rss / 1024))" -v c="$clients" 'BEGIN { printf "%s: %.2f %% of one core, peak %d MB %s\n", m, t / (s1 - s0), r, c }'
  kill -TERM $pid; wait $pid 2>/dev/null || true
  pkill -f "curl -sN" 2>/dev/null || true
done
