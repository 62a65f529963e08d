#!/usr/bin/env bash
# Serve the local model on loopback: llama.cpp's OpenAI-compatible API on :18080 (model name "qwen-judge")
# and an Ollama-protocol front on :18081 (no Ollama server binary is obtainable offline; the front speaks
# /api/chat, /api/tags and /api/show and forwards to llama.cpp). Stops both on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LLM_DIR=${LLM_DIR:-$HOME/.cache/mcp-gateway/local-llm}
PORT=${PORT:-18080}
OLLAMA_PORT=${OLLAMA_PORT:-18081}
THREADS=${THREADS:-1}   # one thread: with the gateway and tests sharing two cores, more threads slow it down
N_CTX=${N_CTX:-16384}   # a compile that retries resends the failed answer: 8192 tokens is too short
"$LLM_DIR/venv/bin/python" -m llama_cpp.server --model "$LLM_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" \
  --model_alias qwen-judge --host 127.0.0.1 --port "$PORT" --n_threads "$THREADS" --n_threads_batch "$THREADS" \
  --n_ctx "$N_CTX" &
LLAMA=$!
python3 "$HERE/ollama_front.py" --port "$OLLAMA_PORT" --upstream "http://127.0.0.1:$PORT/v1" &
FRONT=$!
trap 'kill $LLAMA $FRONT 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 120); do
  if python3 -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models',timeout=1)" 2>/dev/null; then
    echo "serving: openai/qwen-judge at http://127.0.0.1:$PORT/v1 ; ollama_chat/qwen-judge at http://127.0.0.1:$OLLAMA_PORT"
    break
  fi
  sleep 1
done
wait $LLAMA
