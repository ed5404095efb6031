"""Checkpoints in and out: HF safetensors folders, GGUF files, the packaged SmolLM2."""
