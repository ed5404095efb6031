"""Trains the guard on the one loop and reports it beside the TF-IDF baseline (llm/safety/
guard_training.py has the steps; guard.py the guard itself).

  python -m llm.safety.train_guard --backbone=smollm2 --workdir=runs/guard
  python -m llm.safety.train_guard --backbone=run:runs/lifecycle/pretrain --lora_rank=0 ...
"""

import logging

from absl import app, flags

from llm.safety.guard_training import train_guard

_BACKBONE = flags.DEFINE_string("backbone", "smollm2", "The guard's backbone: smollm2, "
                                "gguf:PATH, hf:DIR or run:WORKDIR.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the guard, its checkpoints and report go.")
_STEPS = flags.DEFINE_integer("steps", 240, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Rows per step.")
_SEQ = flags.DEFINE_integer("seq_len", 128, "Tokens per text (cut from the start).")
_LR = flags.DEFINE_float("lr", 5e-4, "Peak learning rate (warmup, then cosine).")
_RANK = flags.DEFINE_integer("lora_rank", 8, "LoRA rank; 0 trains the whole backbone.")
_PROMPTS = flags.DEFINE_integer("prompts_per_class", 300, "Harmful and benign training "
                                "prompts each (0: all); every scored reply is used.")
_FPR = flags.DEFINE_float("target_fpr", 0.02, "False-positive target for prompts on the "
                          "validation split (a flagged prompt is refused).")
_REPLY_FPR = flags.DEFINE_float("response_target_fpr", 0.1, "False-positive target for replies "
                                "(a flagged reply is drawn again).")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "run: backbones: their tokenizer.model.")


def main(argv):
  del argv
  from llm.runtime import configure_logging
  configure_logging()
  report = train_guard(_BACKBONE.value, _WORKDIR.value, steps=_STEPS.value,
                       batch_size=_BATCH.value, seq_len=_SEQ.value, lr=_LR.value,
                       lora_rank=_RANK.value, prompts_per_class=_PROMPTS.value,
                       target_fpr=_FPR.value, response_target_fpr=_REPLY_FPR.value,
                       tokenizer_path=_TOKENIZER.value)
  logging.info("guard: %s", report["guard"])
  logging.info("baseline: %s", report["baseline"])


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
