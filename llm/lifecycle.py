"""The main job: the model's life end to end on real text, as far as the project reaches.

  python -m llm.lifecycle --workdir=DIR [--config=experiments/configs/tiny.py] [--config.x=y]

Stages: curation of the packaged sources (llm.data.curation.run) -> tokenizer -> packed rows ->
pretraining on the one loop -> held-out perplexity (against a unigram baseline) -> sampled
text -> alignment on the same loop (chat SFT -> reward model -> DPO and PPO, each from its
config in experiments/configs/{sft,rm,dpo,ppo}_tiny.py; llm/align/stages.py) -> chat replies. Writes DIR/report.json, and DIR/curated/report.md for the curation.
"""

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from llm.align.stages import STAGES, run_alignment, stage_configs
from llm.config import CONFIGS_DIR
from llm.data.prepare import prepare_lm_data
from llm.data.curation.curate import curate
from llm.eval.bits_per_byte import bits_per_byte, heldout_texts
from llm.eval.perplexity import model_perplexity, unigram_perplexity
from llm.runtime import configure_logging, validated
from llm.model.sampling import complete, generate
from llm.tokenizer.base import IM_END
from llm.tokenizer.chat import render_chat
from llm.train.lm_task import LMTask
from llm.train.loop import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(CONFIGS_DIR / "tiny.py"), "Experiment config for the pretraining stage.",
    lock_config=True)
_CURATION = config_flags.DEFINE_config_file(
    "curation", str(CONFIGS_DIR / "data_packaged.py"), "Curation config for the data stage.")
_PRETRAIN_SOURCES = flags.DEFINE_list(
    "pretrain_sources", ["shakespeare"],
    "Curated sources the tiny model pretrains on (its 2k-token vocabulary cannot cover the "
    "Chinese sources); empty for all.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/lifecycle", "Output folder.")
_PROMPTS = flags.DEFINE_list("prompts", ["HAMLET.\nTo be, or not", "KING.\n"],
                             "Prompts to sample from after training.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 80, "Tokens to sample per prompt.")
_ALIGN_STEPS = flags.DEFINE_list(
    "align_steps", ["200", "150", "80", "120"],
    "Steps of SFT, reward-model, DPO and PPO training after pretraining (0 skips a stage; "
    "0,0,0,0 skips alignment); empty keeps each stage config's own.")
_ALIGN_CONFIGS = flags.DEFINE_list(
    "align_configs", ["sft_tiny", "rm_tiny", "dpo_tiny", "ppo_tiny"],
    "Experiment configs (names under experiments/configs, or paths) of the SFT, reward-model, "
    "DPO and PPO stages; their model comes from the pretraining config.")
_ALIGN_CONVERSATIONS = flags.DEFINE_integer(
    "align_conversations", 3000, "ShareGPT conversations for SFT and preference pairs.")
_CHAT_PROMPT = flags.DEFINE_string("chat_prompt", "What is the capital of France?",
                                   "A user message to answer with the aligned model.")


def curation_stage(curation_config, workdir: str) -> dict:
  """Runs the curation once per workdir; returns its stats."""
  out = os.path.join(workdir, "curated")
  stats_path = os.path.join(out, "stats.json")
  if not os.path.exists(stats_path):
    curate(curation_config, out)
  with open(stats_path, encoding="utf-8") as f:
    return json.load(f)


def chat_reply(tokenizer, graphdef, params, message: str, new_tokens: int, seed: int = 0) -> str:
  """The model's reply to one user message, in the chat template, up to <|im_end|>."""
  ids, _ = render_chat(tokenizer, [{"role": "user", "content": message}],
                       add_generation_prompt=True)
  return tokenizer.decode(complete(graphdef, params, ids, new_tokens, temperature=0.8,
                                   rng=jax.random.key(seed),
                                   stop_ids=(tokenizer.special_id(IM_END),)))


def run(config, workdir: str, prompts: list[str], new_tokens: int, curation_config=None,
        pretrain_sources: tuple[str, ...] = (), align_steps=(0, 0, 0, 0),
        align_conversations: int = 3000, chat_prompt: str = "",
        align_configs=("sft_tiny", "rm_tiny", "dpo_tiny", "ppo_tiny")) -> dict:
  """Runs every stage and returns the report (also written to workdir/report.json)."""
  report, clock = {"config": config.name}, time.perf_counter()
  if curation_config is not None:
    logging.info("[0/5] curation of the packaged sources")
    stats = curation_stage(curation_config, workdir)
    report["curation"] = {"kept_by_source": stats["kept_by_source"],
                          "removed": stats["removed"], "seconds": stats["seconds"]}
    config.data.source = "curated:" + os.path.abspath(os.path.join(workdir, "curated"))
    config.data.curated_sources = ",".join(pretrain_sources)
  logging.info("[1/5] data: documents -> tokenizer -> packed rows")
  tokenizer, train_rows, heldout_rows = prepare_lm_data(config.data, workdir)
  report["data"] = {"train_rows": len(train_rows),
                    "packing_efficiency": round(train_rows.manifest["packing_efficiency"], 4),
                    "heldout_rows": int(len(heldout_rows["inputs"])),
                    "train_tokens": train_rows.manifest["tokens"],
                    "tokenizer_vocab": tokenizer.vocab_size}

  logging.info("[2/5] pretraining %s for %d steps", config.name, config.train.steps)
  task = LMTask(config, train_rows, heldout_rows)
  result = train(config, task, os.path.join(workdir, "pretrain"))
  params = result["state"]["params"]
  # The metrics file spans every run on this workdir, resumed ones included.
  with open(os.path.join(workdir, "pretrain", "metrics.jsonl"), encoding="utf-8") as f:
    history = [json.loads(line) for line in f if line.strip()]
  report["pretrain"] = {
      "steps": config.train.steps,
      "first_loss": history[0]["loss"] if history else None,
      "final_loss": history[-1]["loss"] if history else None,
      "median_tokens_per_second": _median([h["tokens_per_second"] for h in history[1:]]),
      "median_mfu": _median([h["mfu"] for h in history[1:]])}

  logging.info("[3/5] held-out perplexity")
  model = task.model(params)
  report["heldout"] = dict(
      model_perplexity(model, heldout_rows, config.train.batch_size),
      unigram_perplexity=unigram_perplexity(train_rows.to_arrays(), heldout_rows,
                                            config.model.vocab_size))
  # Bits per byte compare across tokenizers: the same text as `llm.eval.run`'s bpb task.
  report["heldout"]["bits_per_byte_shakespeare"] = bits_per_byte(
      model, tokenizer, heldout_texts("shakespeare", 200_000),
      window=config.model.max_seq_len)["bits_per_byte"]

  logging.info("[4/5] sampling")
  samples = []
  for i, prompt in enumerate(prompts):
    ids = jnp.asarray([[tokenizer.bos_id] + tokenizer.encode(prompt)], jnp.int32)
    out = generate(task.graphdef, params, ids, jax.random.key(i), max_new_tokens=new_tokens)
    completion = out[0].tolist()
    if tokenizer.eos_id in completion:  # the document ended
      completion = completion[:completion.index(tokenizer.eos_id)]
    samples.append({"prompt": prompt, "completion": tokenizer.decode(completion)})
  report["samples"] = samples

  if align_steps is None or any(align_steps):
    logging.info("[5/5] alignment: SFT -> reward model -> DPO and PPO")
    configs = stage_configs(config, dict(zip(STAGES, align_configs)),
                            dict(zip(STAGES, align_steps or ())))
    configs["sft"].align.conversations = align_conversations
    aligned = run_alignment(configs, tokenizer, jax.device_get(params),
                            os.path.join(workdir, "align"))
    policies = aligned.pop("params")
    aligned["chat"] = {"prompt": chat_prompt, **{
        f"reply_after_{name}": chat_reply(tokenizer, task.graphdef, policy, chat_prompt,
                                          new_tokens) for name, policy in policies.items()}}
    report["alignment"] = aligned
  report["seconds"] = time.perf_counter() - clock
  path = os.path.join(workdir, "report.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, ensure_ascii=False)
  os.replace(path + ".tmp", path)
  return report


def print_alignment(a: dict) -> None:
  print(f"\nSFT held-out assistant loss {a['sft']['heldout_assistant_loss_before']:.3f} -> "
        f"{a['sft']['heldout_assistant_loss_after']:.3f}")
  if "reward_model" in a:
    print(f"reward model held-out pair accuracy {a['reward_model']['heldout']['accuracy']:.3f}")
  if "dpo" in a:
    before, after = a["dpo"]["heldout_before"], a["dpo"]["heldout_after"]
    print(f"DPO held-out preference accuracy {before['rewards/accuracy']:.3f} -> "
          f"{after['rewards/accuracy']:.3f}, margin {before['rewards/margin']:.3f} -> "
          f"{after['rewards/margin']:.3f}")
  if "ppo" in a:
    p = a["ppo"]
    print(f"{p['algo'].upper()} held-out reward {p['heldout_before']['score']:.3f} -> "
          f"{p['heldout_after']['score']:.3f}, KL to the reference "
          f"{p['heldout_before']['kl']:.3f} -> {p['heldout_after']['kl']:.3f} (bound "
          f"{p['max_kl']:g}, rollout max {p['rollout_kl_max']:.3f}); curves {p['curves']}")
  for key, reply in a["chat"].items():
    if key.startswith("reply_after_"):
      print(f"chat after {key[len('reply_after_'):]}: {a['chat']['prompt']!r} -> {reply!r}")


def _align_steps(values: list[str]):
  if values and len(values) != len(STAGES):
    raise app.UsageError(f"--align_steps takes {len(STAGES)} numbers ({', '.join(STAGES)}), "
                         f"got {values}")
  return tuple(int(v) for v in values) if values else None


def _median(values):
  return sorted(values)[len(values) // 2] if values else None


def main(argv):
  del argv
  configure_logging()
  config = validated(_CONFIG.value)
  report = run(config, _WORKDIR.value, _PROMPTS.value, _NEW_TOKENS.value, _CURATION.value,
               tuple(_PRETRAIN_SOURCES.value), _align_steps(_ALIGN_STEPS.value),
               _ALIGN_CONVERSATIONS.value, _CHAT_PROMPT.value, tuple(_ALIGN_CONFIGS.value))
  h = report["heldout"]
  print(f"\nheld-out perplexity {h['perplexity']:.1f} over {h['tokens']} tokens "
        f"(unigram baseline {h['unigram_perplexity']:.1f}); "
        f"{h['bits_per_byte_shakespeare']:.3f} bits per byte on held-out Shakespeare")
  for s in report["samples"]:
    print(f"\n--- prompt: {s['prompt']!r}\n{s['prompt']}{s['completion']}")
  if "alignment" in report:
    print_alignment(report["alignment"])
  print(f"\nreport: {os.path.join(_WORKDIR.value, 'report.json')}")


if __name__ == "__main__":
  app.run(main)
