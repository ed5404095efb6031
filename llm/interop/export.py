"""Exports one of our training runs for other tools:

  python -m llm.interop.export --run=runs/lifecycle/align/sft --gguf=sft.Q8_0.gguf \
      --tensor_type=Q8_0
  python -m llm.interop.export --run=runs/lifecycle/pretrain --hf=exported/pretrain

--gguf writes a llama.cpp file with the run's SentencePiece tokenizer (gguf_export.py); --hf a
folder of safetensors + config.json for transformers (the tokenizer.model is copied beside it).
The run's model comes from its config.json, the parameters from its newest checkpoint.
"""

import logging
import os
import shutil

from absl import app, flags

from llm.runtime import configure_logging

_RUN = flags.DEFINE_string("run", None, "A training run's workdir.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "Default: the run's own.")
_GGUF = flags.DEFINE_string("gguf", "", "Write a GGUF file here.")
_HF = flags.DEFINE_string("hf", "", "Write an HF checkpoint folder here.")
_TENSOR_TYPE = flags.DEFINE_enum("tensor_type", "F32", ["F32", "F16", "Q8_0"],
                                 "GGUF storage type of the matrices.")


def export_run(run: str, *, gguf_path: str = "", hf_dir: str = "", tokenizer_path: str = "",
               tensor_type: str = "F32") -> list[str]:
  """Writes the requested exports of a run; returns their paths."""
  from llm.eval.models import load_run
  if not gguf_path and not hf_dir:
    raise ValueError("nothing to export: pass a GGUF path and/or an HF folder")
  model_config, params, tokenizer, _ = load_run(run, tokenizer_path)
  written = []
  if gguf_path:
    from llm.interop.gguf_export import save_gguf
    written.append(save_gguf(gguf_path, model_config, params, tokenizer,
                             tensor_type=tensor_type, name=os.path.basename(run.rstrip("/"))))
  if hf_dir:
    from llm.interop.hf_checkpoint import save_hf_checkpoint
    written.append(save_hf_checkpoint(hf_dir, model_config, params, bos_id=tokenizer.bos_id,
                                      eos_id=tokenizer.eos_id))
    shutil.copy(tokenizer.path, os.path.join(hf_dir, "tokenizer.model"))
  return written


def main(argv):
  del argv
  configure_logging()
  try:
    for path in export_run(_RUN.value, gguf_path=_GGUF.value, hf_dir=_HF.value,
                           tokenizer_path=_TOKENIZER.value, tensor_type=_TENSOR_TYPE.value):
      logging.info("wrote %s", path)
      print(f"wrote {path}")
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main)
