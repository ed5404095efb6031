"""A training run's model and tokenizer written out for other tools (the library behind
`python -m llm.interop.export`)."""

import os
import shutil

from llm.interop.gguf_export import save_gguf
from llm.interop.hf_checkpoint import save_hf_checkpoint
from llm.train.run_loading import load_run


def export_run(run: str, *, gguf_path: str = "", hf_dir: str = "", tokenizer_path: str = "",
               tensor_type: str = "F32") -> list[str]:
  """Writes the requested exports of a run; returns their paths."""
  if not gguf_path and not hf_dir:
    raise ValueError("nothing to export: pass a GGUF path and/or an HF folder")
  model_config, params, tokenizer, _ = load_run(run, tokenizer_path)
  written = []
  if gguf_path:
    written.append(save_gguf(gguf_path, model_config, params, tokenizer,
                             tensor_type=tensor_type, name=os.path.basename(run.rstrip("/"))))
  if hf_dir:
    written.append(save_hf_checkpoint(hf_dir, model_config, params, bos_id=tokenizer.bos_id,
                                      eos_id=tokenizer.eos_id))
    shutil.copy(tokenizer.path, os.path.join(hf_dir, "tokenizer.model"))
  return written
