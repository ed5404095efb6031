"""Trains the guard on the one loop, picks its threshold on the validation split, and reports
it beside the TF-IDF baseline on the same held-out test split.

  python -m llm.safety.train_guard --backbone=smollm2 --workdir=runs/guard
  python -m llm.safety.train_guard --backbone=run:runs/lifecycle/pretrain --lora_rank=0 ...

The report (workdir/report.json, also in guard.json) has AUROC, F1, recall and false-positive
rate per kind of held-out example (prompts alone, prompts with replies), and the
false-positive rate on benign prompts, for the guard and the baseline.
"""

import copy
import logging
import time

import numpy as np
from absl import app, flags

from llm.config import load_experiment
from llm.io import write_json_atomic
from llm.safety.baseline import fit_baseline, threshold_for_fpr
from llm.safety.examples import guard_examples
from llm.safety.guard import Guard, save_guard
from llm.safety.guard_task import GuardTask, guard_rows
from llm.safety.metrics import guard_metrics

TRAINABLE_WITH_LORA = "lora,head/"


def guard_config(model_config, steps: int, batch_size: int, seq_len: int, lr: float,
                 lora_rank: int):
  """The loop's config for the guard on a backbone of `model_config`: with lora_rank > 0 the
  adapters and the head train, else every parameter."""
  config = load_experiment("tiny")
  config.name, config.train.task = "guard", "guard"
  config.model = copy.deepcopy(model_config)
  config.model.lora.rank = lora_rank
  config.train.trainable = TRAINABLE_WITH_LORA if lora_rank else ""
  config.data.seq_len = seq_len
  config.data.tokenizer_vocab_size = model_config.vocab_size  # the backbone's own
  config.train.steps, config.train.batch_size, config.train.eval_every = steps, batch_size, 0
  config.optim.lr, config.optim.warmup_steps = lr, max(1, steps // 10)
  config.checkpoint.every_steps = steps
  return config


def evaluate(scores: dict, examples: dict, threshold: float) -> dict:
  """Metrics at `threshold` on the test split: per kind, all, and on benign prompts."""
  test, s = examples["test"], scores["test"]
  kinds = np.array([e.kind for e in test])
  unsafe = np.array([e.unsafe for e in test])
  out = {kind: guard_metrics(s[kinds == kind], unsafe[kinds == kind], threshold)
         for kind in ("prompt", "response")}
  out["all"] = guard_metrics(s, unsafe, threshold)
  benign = np.array([e.category == "benign" for e in test])
  out["benign_prompt_false_positive_rate"] = float(np.mean(s[benign] >= threshold))
  return out


def fit_judge(examples: dict, target_fpr: float):
  """The baseline fitted on the train split and its threshold for `target_fpr` on the
  validation split: (model, threshold); model.predict_proba(texts)[:, 1] is P(unsafe)."""
  model = fit_baseline([e.text for e in examples["train"]], [e.unsafe for e in examples["train"]])
  scores = model.predict_proba([e.text for e in examples["validation"]])[:, 1]
  return model, threshold_for_fpr(scores, [e.unsafe for e in examples["validation"]], target_fpr)


def run_baseline(examples: dict, target_fpr: float) -> dict:
  model, threshold = fit_judge(examples, target_fpr)
  scores = {k: model.predict_proba([e.text for e in v])[:, 1] for k, v in examples.items()}
  return evaluate(scores, examples, threshold)


def train_guard(backbone: str, workdir: str, steps: int = 240, batch_size: int = 8,
                seq_len: int = 128, lr: float = 5e-4, lora_rank: int = 8,
                prompts_per_class: int = 300, target_fpr: float = 0.02,
                tokenizer_path: str = "") -> dict:
  """Trains, calibrates, evaluates and saves the guard in `workdir`; returns its report."""
  from llm.align.objective import trained_params
  from llm.eval.models import Evaluated
  from llm.model.factory import with_fresh_adapters
  from llm.train.loop import train
  from llm.train.partition import split_trainable
  examples = {"train": guard_examples("train", prompts_per_class),
              "validation": guard_examples("validation"), "test": guard_examples("test")}
  logging.info("guard examples: %s", {k: len(v) for k, v in examples.items()})
  base = Evaluated(backbone, tokenizer_path)
  config = guard_config(base.model_config, steps, batch_size, seq_len, lr, lora_rank)
  init = with_fresh_adapters(config.model, base.params) if lora_rank else base.params
  rows = guard_rows(base.tokenizer, [e.text for e in examples["train"]],
                    [e.unsafe for e in examples["train"]], seq_len)
  start = time.time()
  result = train(config, GuardTask(config, rows, init_params=init), workdir)
  train_seconds = time.time() - start
  params = trained_params(result)
  guard = Guard(config, params, base.tokenizer)
  start = time.time()
  scores = {k: guard.probabilities([e.text for e in v]) for k, v in examples.items()
            if k != "train"}
  score_seconds = (time.time() - start) / sum(len(v) for k, v in examples.items() if k != "train")
  threshold = threshold_for_fpr(scores["validation"],
                                [e.unsafe for e in examples["validation"]], target_fpr)
  report = {"backbone": backbone, "lora_rank": lora_rank, "steps": steps,
            "batch_size": batch_size, "seq_len": seq_len, "target_fpr": target_fpr,
            "examples": {k: len(v) for k, v in examples.items()},
            "train_seconds": round(train_seconds, 1),
            "score_seconds_per_text": round(score_seconds, 4),
            "first_loss": float(result["history"][0]["loss"]),
            "last_loss": float(result["history"][-1]["loss"]),
            "guard": evaluate(scores, examples, threshold),
            "baseline": run_baseline(examples, target_fpr)}
  trainable = split_trainable(params, config.train.trainable)[0]
  save_guard(workdir, config, trainable, backbone, threshold, report)
  write_json_atomic(f"{workdir}/report.json", report, indent=2)
  return report


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
_FPR = flags.DEFINE_float("target_fpr", 0.02, "False-positive target on the validation split.")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "run: backbones: their tokenizer.model.")


def main(argv):
  del argv
  from llm.runtime import configure_logging
  configure_logging()
  report = train_guard(_BACKBONE.value, _WORKDIR.value, _STEPS.value, _BATCH.value, _SEQ.value,
                       _LR.value, _RANK.value, _PROMPTS.value, _FPR.value, _TOKENIZER.value)
  logging.info("guard: %s", report["guard"])
  logging.info("baseline: %s", report["baseline"])


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
