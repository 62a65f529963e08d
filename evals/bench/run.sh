#!/usr/bin/env bash
# Latency, start-up and memory of mcp-gateway against a direct connection (and, if installed, Lasso's
# gateway), with the shared harness ../shared/bench/lasso/mcp_bench.py. Calls are interleaved across
# targets in one run, so machine noise hits every target alike. Figures print at the end and land in
# evals/bench/results/ (raw) and evals/bench/results.json (summary).
#
#   bash evals/bench/run.sh [echo|unique|secrets|big|startup|load|all]   (default all)
#   LASSO=1 bash evals/bench/run.sh all                          also Lasso 1.2.1 (bash ../shared/bench/lasso/setup_lasso_env.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/lasso}
BENCH_VENV=${BENCH_VENV:-/tmp/bench-venv}
OUT=$ROOT/evals/bench/results
N=${N:-500}
mkdir -p "$OUT" "$OUT/logs"
[ -x "$BENCH_VENV/bin/python" ] || { python3 -m venv "$BENCH_VENV"; "$BENCH_VENV/bin/pip" install -q "mcp<2" psutil; }

PYB="$BENCH_VENV/bin/python"
DS="$PYB $HARNESS/downstream_server.py"
WORK=$(mktemp -d)
# Default guards on (secrets, PII, injection classifier, rules), no judge; the audit log is written.
OURS="env MCP_GATEWAY_AUDIT_DB=$WORK/audit.db MCP_GATEWAY_PINS_DB=$WORK/pins.db MCP_GATEWAY_ENGINE_READY_TIMEOUT_S=600 $ROOT/.venv/bin/mcp-gateway wrap --name bench -- $DS"
TARGETS=(--target "direct=$DS" --target "mcp-gateway=$OURS")
if [ "${LASSO:-0}" = 1 ]; then
  TARGETS+=(--target "lasso_basic+presidio=/tmp/lasso-venv/bin/mcp-gateway --mcp-json-path /tmp/lasso-work/mcp.json -p basic -p presidio")
fi
H="$PYB $HARNESS/mcp_bench.py"
CWD=(--cwd "${LASSO_CWD:-/tmp/lasso-work/presidio-cwd}")
[ -d "${CWD[1]}" ] || CWD=()

what=${1:-all}
if [[ $what == echo || $what == all ]]; then
  $H latency "${CWD[@]}" --stderr-dir "$OUT/logs/echo" -n "$N" --batch 10 --warmup 30 --tool echo \
     --args '{"text":"hello"}' "${TARGETS[@]}" --json-out "$OUT/latency_echo.json"
fi
if [[ $what == unique || $what == all ]]; then
  # the same short echo, but never the same text twice (the harness above repeats one)
  uniq_targets=(--target "direct=$DS" --target "mcp-gateway=$OURS")
  "$PYB" "$ROOT/evals/bench/unique_echo.py" "$OUT/latency_unique_echo.json" -n "$N" --stderr-dir "$OUT/logs/unique" \
     "${uniq_targets[@]}"
fi
if [[ $what == secrets || $what == all ]]; then
  $H latency "${CWD[@]}" --stderr-dir "$OUT/logs/secrets" -n "$N" --batch 10 --warmup 30 --tool leak_secrets \
     --args '{}' "${TARGETS[@]}" --json-out "$OUT/latency_leak_secrets.json"
fi
if [[ $what == big || $what == all ]]; then
  $H latency "${CWD[@]}" --stderr-dir "$OUT/logs/big" -n "${N_BIG:-100}" --batch 5 --warmup 10 --tool big \
     --args '{"kb":64}' "${TARGETS[@]}" --json-out "$OUT/latency_big64k.json"
fi
if [[ $what == startup || $what == all ]]; then
  # start-up also through `run`, with the same server as the one entry of an mcp.json
  printf '{"mcpServers": {"bench": {"command": "%s", "args": ["%s"]}}}\n' "$PYB" "$HARNESS/downstream_server.py" > "$WORK/mcp.json"
  RUN="env MCP_GATEWAY_AUDIT_DB=$WORK/audit.db MCP_GATEWAY_PINS_DB=$WORK/pins.db MCP_GATEWAY_ENGINE_READY_TIMEOUT_S=600 $ROOT/.venv/bin/mcp-gateway run --mcp-json-path $WORK/mcp.json"
  # and through `wrap --url`, in front of the repo's remote test server (already running: its row is all gateway)
  URL_PORT=${URL_PORT:-18799}
  "$ROOT/.venv/bin/python" "$ROOT/tests/servers/remote_server.py" "$URL_PORT" stream 2> "$WORK/remote.log" &
  REMOTE_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$URL_PORT") 2>/dev/null && break; sleep 0.1; done
  URLW="env MCP_GATEWAY_AUDIT_DB=$WORK/audit.db MCP_GATEWAY_PINS_DB=$WORK/pins.db MCP_GATEWAY_ENGINE_READY_TIMEOUT_S=600 $ROOT/.venv/bin/mcp-gateway wrap --name bench --url http://127.0.0.1:$URL_PORT/mcp"
  $H startup "${CWD[@]}" --stderr-dir "$OUT/logs/startup" --repeat "${REPEAT:-7}" "${TARGETS[@]}" \
     --target "mcp-gateway-run=$RUN" --target "mcp-gateway-url=$URLW" --json-out "$OUT/startup.json"
  kill "$REMOTE_PID"
fi
if [[ $what == load || $what == all ]]; then
  # engine load time and the cost of a full garbage collection once loaded
  (cd "$ROOT" && "$ROOT/.venv/bin/python" -m evals.bench.engine_load "$OUT/engine_load.json")
fi
"$ROOT/.venv/bin/python" "$ROOT/evals/bench/summarize.py" "$OUT" "$ROOT/evals/bench/results.json"
rm -rf "$WORK"
