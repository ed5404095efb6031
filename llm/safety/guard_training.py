"""Trains the guard on the one loop, calibrates it on the validation split, and reports
it beside the TF-IDF baseline on the same held-out test split.

  python -m llm.safety.train_guard --backbone=smollm2 --workdir=runs/guard   (the command line)
  python -m llm.safety.train_guard --backbone=run:runs/lifecycle/pretrain --lora_rank=0 ...

The report (workdir/report.json, also in guard.json) has AUROC, F1, recall, false-positive
rate and calibration error per kind of held-out example (prompts alone, prompts with replies),
and the false-positive rate on benign prompts, for the guard and the baseline, each at its own
per-kind thresholds for the same false-positive target on the validation split; and the top-1
accuracy of the guard's harm-category probe (categories.py) beside a TF-IDF one.
"""

import copy
import json
import logging
import os
import time

import numpy as np

from llm.config import load_experiment
from llm.io import write_json_atomic
from llm.safety.baseline import fit_baseline, threshold_for_fpr
from llm.safety.calibration import KINDS, calibrate, calibrated, expected_calibration_error
from llm.safety.categories import fit_categories, labelled, top_categories
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


def _kinds(examples) -> tuple[np.ndarray, np.ndarray]:
  return np.array([e.kind for e in examples]), np.array([e.unsafe for e in examples])


def evaluate(probabilities: np.ndarray, test: list, thresholds: dict) -> dict:
  """Metrics on the test split per kind at its threshold, the expected calibration error, and
  the false-positive rate on benign prompts."""
  kinds, unsafe = _kinds(test)
  out = {}
  for kind in KINDS:
    mask = kinds == kind
    out[kind] = dict(guard_metrics(probabilities[mask], unsafe[mask], thresholds[kind]),
                     calibration_error=expected_calibration_error(probabilities[mask],
                                                                  unsafe[mask]))
  benign = np.array([e.category == "benign" for e in test])
  out["benign_prompt_false_positive_rate"] = float(
      np.mean(probabilities[benign] >= thresholds["prompt"]))
  return out


def kind_thresholds(scores: np.ndarray, examples: list, target_fpr: dict) -> dict:
  kinds, unsafe = _kinds(examples)
  return {kind: threshold_for_fpr(scores[kinds == kind], unsafe[kinds == kind],
                                  target_fpr[kind])
          for kind in KINDS}


def fit_judge(examples: dict, target_fpr: dict):
  """The baseline fitted on the train split and its thresholds per kind for `target_fpr` on
  the validation split: (model, {kind: threshold}); model.predict_proba(texts)[:, 1] is
  P(unsafe)."""
  model = fit_baseline([e.text for e in examples["train"]], [e.unsafe for e in examples["train"]])
  scores = model.predict_proba([e.text for e in examples["validation"]])[:, 1]
  return model, kind_thresholds(scores, examples["validation"], target_fpr)


def run_baseline(examples: dict, target_fpr: dict) -> dict:
  model, thresholds = fit_judge(examples, target_fpr)
  scores = model.predict_proba([e.text for e in examples["test"]])[:, 1]
  return evaluate(scores, examples["test"], thresholds)


def fit_category_probe(guard: Guard, examples: dict) -> tuple[dict, dict]:
  """The category probe on the guard's features of the labelled unsafe training examples, and
  its top-1 accuracy on the labelled unsafe test examples per kind, beside a TF-IDF
  logistic regression and the kind's most common training category."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.feature_extraction.text import TfidfVectorizer
  train, test = labelled(examples["train"]), labelled(examples["test"])
  labels = [e.category for e in train]
  probe = fit_categories(guard.features([e.text for e in train]), labels)
  predicted = np.array(top_categories(probe, guard.features([e.text for e in test])))
  words = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                        LogisticRegression(C=4.0, max_iter=3000))
  by_words = words.fit([e.text for e in train], labels).predict([e.text for e in test])
  truth, kinds = np.array([e.category for e in test]), np.array([e.kind for e in test])
  report = {"classes": probe["classes"], "train_examples": len(train)}
  for kind in KINDS:
    mask = kinds == kind
    seen = [e.category for e in train if e.kind == kind]
    common = max(set(seen), key=seen.count) if seen else None
    report[kind] = {"examples": int(mask.sum()),
                    "accuracy": float(np.mean(predicted[mask] == truth[mask])),
                    "baseline_accuracy": float(np.mean(by_words[mask] == truth[mask])),
                    "most_common_accuracy": float(np.mean(truth[mask] == common))}
  return probe, report


def training_summary(workdir: str) -> dict:
  """First and last loss and the seconds spent in steps, from the run's metrics file (which
  spans resumed runs too)."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    steps = [json.loads(line) for line in f if line.strip()]
  if not steps:
    return {}
  return {"first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"],
          "train_seconds": round(sum(s.get("step_seconds", 0.0) for s in steps), 1)}


def train_guard(backbone: str, workdir: str, steps: int = 240, batch_size: int = 8,
                seq_len: int = 128, lr: float = 5e-4, lora_rank: int = 8,
                prompts_per_class: int = 300, target_fpr: float = 0.02,
                response_target_fpr: float = 0.1,
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
  result = train(config, GuardTask(config, rows, init_params=init), workdir)
  params = trained_params(result)
  guard = Guard(config, params, base.tokenizer)
  start = time.time()
  logits = {k: guard.logits([e.text for e in examples[k]]) for k in ("validation", "test")}
  score_seconds = (time.time() - start) / sum(len(examples[k]) for k in logits)
  targets = {"prompt": target_fpr, "response": response_target_fpr}
  calibration = calibrate(logits["validation"], *_kinds(examples["validation"]), targets)
  probabilities = calibrated(logits["test"], _kinds(examples["test"])[0], calibration)
  report = {"backbone": backbone, "lora_rank": lora_rank, "steps": steps,
            "batch_size": batch_size, "seq_len": seq_len, "target_fpr": targets,
            "examples": {k: len(v) for k, v in examples.items()},
            "score_seconds_per_text": round(score_seconds, 4),
            **training_summary(workdir),
            "calibration": calibration,
            "guard": evaluate(probabilities, examples["test"],
                              {k: c["threshold"] for k, c in calibration.items()}),
            "baseline": run_baseline(examples, targets)}
  probe, report["categories"] = fit_category_probe(guard, examples)
  trainable = split_trainable(params, config.train.trainable)[0]
  save_guard(workdir, config, trainable, backbone, calibration, report, probe)
  write_json_atomic(f"{workdir}/report.json", report, indent=2)
  return report


