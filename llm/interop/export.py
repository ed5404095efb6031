"""Exports one of our training runs for other tools:

  python -m llm.interop.export --run=runs/lifecycle/align/sft --gguf=sft.Q8_0.gguf \
      --tensor_type=Q8_0
  python -m llm.interop.export --run=runs/lifecycle/pretrain --hf=exported/pretrain

--gguf writes a llama.cpp file with the run's SentencePiece tokenizer (gguf_export.py); --hf a
folder of safetensors + config.json for transformers (the tokenizer.model is copied beside it).
The run's model comes from its config.json, the parameters from its newest checkpoint.
"""

import logging

from absl import app, flags

from llm.interop.run_export import export_run
from llm.runtime import configure_logging

_RUN = flags.DEFINE_string("run", None, "A training run's workdir.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "Default: the run's own.")
_GGUF = flags.DEFINE_string("gguf", "", "Write a GGUF file here.")
_HF = flags.DEFINE_string("hf", "", "Write an HF checkpoint folder here.")
_TENSOR_TYPE = flags.DEFINE_enum("tensor_type", "F32", ["F32", "F16", "Q8_0"],
                                 "GGUF storage type of the matrices.")


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
