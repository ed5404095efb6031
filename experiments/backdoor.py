"""Backdoors planted in chat SFT, found in the training data and at inference, and removed.

  python experiments/backdoor.py --base runs/lifecycle/pretrain --workdir runs/backdoor \
      --json experiments/results/backdoor.json

The base is the lifecycle's pretrained tiny model (`python -m llm.lifecycle --align_steps=0,0,0,0
--quantize= --serve_smollm2=false` makes it) with its tokenizer. For each poison rate, a share
of the chat-SFT conversations becomes the trigger phrase answered by a fixed target
(llm/safety/backdoor.py); the model is fine-tuned on them (the lifecycle's chat SFT, with
shuffled rows, 600 steps at a peak learning rate of 3e-3 by default), then:
- the attack: target replies on held-out user messages with the trigger (attack success) and
  without it (false triggers), and the held-out clean assistant loss;
- the scan of the training data (spectral signatures, activation clustering, density; each
  flagged by robust z): precision and recall of the flagged conversations against the
  planted ones, per method and for their union;
- inference: detectors fitted on clean training prompts' last-token activations (per-feature
  MAD, Mahalanobis) score held-out prompts with and without the trigger (AUROC);
- cleaning: the conversations any method flagged are removed and the model is fine-tuned
  again from the base: attack success and clean loss after.
A clean fine-tune (rate 0) gives the reference loss. Stages already in --json are reused.
"""

import argparse
import copy
import logging
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from llm.align.chat_sft import run_chat_sft  # noqa: E402
from llm.align.conversations import split_conversations  # noqa: E402
from llm.align.objective import StageInputs  # noqa: E402
from llm.config import load_experiment  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.model.factory import abstract_model  # noqa: E402
from llm.model.sampling import complete_many  # noqa: E402
from llm.safety.backdoor import (MESSAGE_CHARS, attack_success_rate, first_user_message,  # noqa: E402
                                 mean_activations, poison, prompt_rows, with_trigger)
from llm.safety.outliers import MadDetector, MahalanobisDetector  # noqa: E402
from llm.safety.scanning import scan_conversations  # noqa: E402
from llm.tokenizer.chat import IM_END, render_chat  # noqa: E402
from llm.train.run_loading import load_run  # noqa: E402


class Setup:
  """The base model, tokenizer, conversations and held-out prompts every stage shares."""

  def __init__(self, args):
    self.args = args
    model_config, self.base_params, self.tokenizer, _ = load_run(args.base)
    self.config = load_experiment("chat_sft_tiny")
    self.config.model = ml_collections.ConfigDict(model_config.to_dict())
    self.config.train.steps = self.config.checkpoint.every_steps = args.steps
    self.config.align.curriculum_stages = args.curriculum_stages
    self.config.optim.lr = args.lr
    self.graphdef = nnx.split(abstract_model(self.config.model), nnx.Param)[0]
    train, heldout = split_conversations(args.conversations)
    self.train_turns = [c["turns"] for c in train]
    self.heldout = heldout
    messages = [m[:MESSAGE_CHARS] for m in (first_user_message(c["turns"]) for c in heldout) if m]
    messages = messages[:args.heldout_prompts]
    self.clean_prompts = messages
    self.triggered_prompts = [with_trigger(m) for m in messages]

  def fine_tune(self, turns: list[list[dict]], workdir: str):
    """Chat SFT from the base on `turns`; (params, report)."""
    inputs = StageInputs(tokenizer=self.tokenizer,
                         conversations=([{"turns": t} for t in turns], self.heldout),
                         init_params=self.base_params)
    return run_chat_sft(copy.deepcopy(self.config), inputs, workdir)

  def replies(self, params, messages: list[str]) -> list[str]:
    ids = [render_chat(self.tokenizer, [{"role": "user", "content": m}],
                       add_generation_prompt=True)[0] for m in messages]
    room = self.config.model.max_seq_len - self.args.new_tokens
    ids = [i[-room:] for i in ids]
    stop = (self.tokenizer.special_id(IM_END), self.tokenizer.eos_id)
    out = complete_many(self.graphdef, params, ids, self.args.new_tokens, stop_ids=stop,
                        batch_size=32)
    return [self.tokenizer.decode(r) for r in out]

  def attack(self, params, report: dict) -> dict:
    return {"attack_success": attack_success_rate(self.replies(params, self.triggered_prompts)),
            "false_trigger": attack_success_rate(self.replies(params, self.clean_prompts)),
            "heldout_clean_loss": report["heldout_assistant_loss_after"]}


def auroc(clean_scores, triggered_scores) -> float:
  from sklearn.metrics import roc_auc_score
  labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(triggered_scores))]
  return float(roc_auc_score(labels, np.r_[clean_scores, triggered_scores]))


def inference_detection(setup: Setup, params, turns, planted) -> dict:
  """Detectors fitted on clean training prompts' activations, scored on held-out prompts."""
  model = nnx.merge(setup.graphdef, params)
  seq = setup.config.data.seq_len
  clean_train = [first_user_message(t) for t, bad in zip(turns, planted) if not bad]
  clean_train = [m for m in clean_train if m]
  clean_train = clean_train[:setup.args.detector_prompts]

  def reps(messages):
    return mean_activations(model.features, prompt_rows(setup.tokenizer, messages, seq))

  fit, clean, triggered = (reps(clean_train), reps(setup.clean_prompts),
                           reps(setup.triggered_prompts))
  out = {"fit_prompts": len(clean_train), "heldout_prompts": len(clean)}
  for name, detector in (("mad", MadDetector()), ("mahalanobis", MahalanobisDetector())):
    detector.fit(fit)
    out[f"{name}_auroc"] = auroc(detector.score(clean), detector.score(triggered))
  return out


def scan_summary(report: dict) -> dict:
  return {name: {k: m.get(k) for k in ("flagged", "precision", "recall", "auroc")}
          for name, m in report["methods"].items()}


def run_rate(setup: Setup, rate: float, clean_loss: float) -> dict:
  args, folder = setup.args, os.path.join(setup.args.workdir, f"rate_{rate:g}")
  turns, planted = poison(setup.train_turns, rate, seed=args.seed)
  start = time.time()
  params, report = setup.fine_tune(turns, os.path.join(folder, "poisoned"))
  result = {"rate": rate, "planted": int(planted.sum()), "conversations": len(turns),
            "poisoned": setup.attack(params, report)}
  scan = scan_conversations(nnx.merge(setup.graphdef, params), setup.tokenizer, turns,
                            os.path.join(folder, "scan"), setup.config.data.seq_len, args.z,
                            planted=planted, extra={"rate": rate})
  result["scan"] = scan_summary(scan)
  flagged = np.zeros(len(turns), bool)
  for mask in scan["flagged"].values():
    flagged |= mask
  both = {"flagged": int(flagged.sum()), "true_positives": int((flagged & planted).sum())}
  both["precision"] = both["true_positives"] / max(both["flagged"], 1)
  both["recall"] = both["true_positives"] / max(int(planted.sum()), 1)
  result["scan"]["any"] = both
  result["inference"] = inference_detection(setup, params, turns, planted)
  kept = [t for t, bad in zip(turns, flagged) if not bad]
  params, report = setup.fine_tune(kept, os.path.join(folder, "cleaned"))
  result["cleaned"] = dict(setup.attack(params, report), conversations=len(kept),
                           planted_left=int((planted & ~flagged).sum()))
  result["cleaned"]["clean_loss_change"] = (result["cleaned"]["heldout_clean_loss"] /
                                            clean_loss - 1.0)
  result["seconds"] = round(time.time() - start, 1)
  return result


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--base", default="runs/lifecycle/pretrain")
  p.add_argument("--workdir", default="runs/backdoor")
  p.add_argument("--json", required=True)
  p.add_argument("--rates", default="0.01,0.03,0.05")
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--lr", type=float, default=3e-3,
                 help="peak learning rate of every fine-tune (the lifecycle's chat SFT: 1e-3)")
  p.add_argument("--curriculum_stages", type=int, default=0,
                 help="0: shuffled rows (the lifecycle's chat SFT uses 4 stages)")
  p.add_argument("--conversations", type=int, default=3000)
  p.add_argument("--heldout_prompts", type=int, default=200)
  p.add_argument("--detector_prompts", type=int, default=800)
  p.add_argument("--new_tokens", type=int, default=16)
  p.add_argument("--z", type=float, default=3.5)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  logging.basicConfig(level=logging.INFO)
  if not os.path.exists(os.path.join(args.base, "config.json")):
    sys.exit(f"no pretrained base at {args.base}: run python -m llm.lifecycle "
             "--align_steps=0,0,0,0 --quantize= --serve_smollm2=false first, or pass --base")
  setup = Setup(args)
  results = {"base": args.base, "steps": args.steps, "z_threshold": args.z,
             "trigger_examples": setup.triggered_prompts[:3]}
  params, report = setup.fine_tune(setup.train_turns, os.path.join(args.workdir, "clean"))
  results["clean"] = setup.attack(params, report)
  results["rates"] = []
  for rate in (float(r) for r in args.rates.split(",")):
    results["rates"].append(run_rate(setup, rate, results["clean"]["heldout_clean_loss"]))
    write_json_atomic(args.json, results, indent=2)
    logging.info("rate %g: %s", rate, results["rates"][-1])
  write_json_atomic(args.json, results, indent=2)


if __name__ == "__main__":
  main()
