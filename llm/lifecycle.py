"""The main job: the model's life end to end on real text, as far as the project reaches.

  python -m llm.lifecycle --workdir=DIR [--config=experiments/configs/tiny.py] [--config.x=y]
  python -m llm.lifecycle --workdir=DIR --quick    (a smoke run: fewer steps, less data)

Stages: curation of the packaged sources (llm.data.curation.run) -> tokenizer -> packed rows ->
pretraining on the one loop -> held-out perplexity (against a unigram baseline) -> sampled
text -> alignment on the same loop (llm/align/sequence.py: chat_sft -> reward_model -> dpo and
ppo, each from its registry config) -> chat replies -> quantization of the aligned model
(GPTQ 4-bit, groups of 128: llm/quant; perplexity before and after) -> serving: the quantized
aligned model and SmolLM2-135M-Instruct answer concurrent chat requests through the engine
(llm/serve) -> safety: a guard trained on the pretrained model, the aligned chat served
through it, a backdoor scan of the chat-SFT data (llm/safety). Writes DIR/report.json (with
each stage's wall time), and DIR/curated/report.md for the curation.
"""

import contextlib
import json
import logging
import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from llm.align.registry import ALIGNMENT_SEQUENCE
from llm.align.sequence import run_sequence, sequence_configs
from llm.config import CONFIGS_DIR
from llm.data.curation.curate import curate
from llm.data.prepare import prepare_lm_data
from llm.eval.bits_per_byte import bits_per_byte, heldout_texts
from llm.io import write_json_atomic
from llm.model.sampling import complete, generate
from llm.quant.showcase import quantize_for_serving
from llm.research.run_report import write_stage_reports
from llm.runtime import configure_logging, rerun_with_hugepages, validated
from llm.tokenizer.base import IM_END
from llm.tokenizer.chat import render_chat
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.perplexity import model_perplexity, unigram_perplexity

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
    f"Steps of {', '.join(ALIGNMENT_SEQUENCE)} after pretraining (0 skips one; all 0 skips "
    "alignment); empty keeps each objective config's own.")
_ALIGN_CONFIGS = flags.DEFINE_list(
    "align_configs", [],
    f"Experiment configs (names under experiments/configs, or paths) of "
    f"{', '.join(ALIGNMENT_SEQUENCE)}; empty: each objective's registry default. Their model "
    "comes from the pretraining config.")
_QUICK = flags.DEFINE_bool(
    "quick", False, "A smoke run of every stage in a few minutes: less data, fewer steps "
    "(overrides the step, data and alignment flags with the values in QUICK).")
_ALIGN_CONVERSATIONS = flags.DEFINE_integer(
    "align_conversations", 3000, "ShareGPT conversations for SFT and preference pairs.")
_CHAT_PROMPT = flags.DEFINE_string("chat_prompt", "What is the capital of France?",
                                   "A user message to answer with the aligned model.")
_SERVE_MESSAGES = flags.DEFINE_list(
    "serve_messages", ["Hello! How are you?", "What is the capital of France?",
                       "Give me a tip for learning to code.", "Tell me about the sea."],
    "Chat messages the serving stage sends together to the aligned model and to SmolLM2.")
_QUANTIZE = flags.DEFINE_string(
    "quantize", "gptq:4:128", "Quantization of the aligned model before serving "
    "(METHOD:BITS[:GROUP], llm/quant); empty serves it in float32.")
_GUARD_STEPS = flags.DEFINE_integer(
    "guard_steps", 150, "Steps of the safety guard trained on the pretrained model (llm/safety); "
    "0 skips the safety stage (guard, guarded chat, backdoor scan of the SFT data).")
_SERVE_SMOLLM2 = flags.DEFINE_bool(
    "serve_smollm2", True, "Also serve the packaged SmolLM2-135M-Instruct in the serving stage.")


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


# --quick: the values of a smoke run (the test suite runs it).
QUICK = {"config": {"train.steps": 150, "data.max_chars": 400_000},
         "curation_chars": {"shakespeare": 450_000, "chatterbot": 20_000,
                            "peoples_daily": 20_000, "chinese_reviews": 20_000,
                            "python_stdlib": 60_000, "chitchat": 20_000, "sharegpt": 20_000},
         "align_steps": (15, 15, 15, 8), "align_conversations": 300, "new_tokens": 12,
         "serve_smollm2": False, "guard_steps": 10}


class StageClock:
  """Wall time of each named stage, for the report."""

  def __init__(self):
    self.seconds = {}

  @contextlib.contextmanager
  def __call__(self, name: str):
    start = time.perf_counter()
    yield
    self.seconds[name] = round(time.perf_counter() - start, 1)


def run(config, workdir: str, prompts: list[str], new_tokens: int, curation_config=None,
        pretrain_sources: tuple[str, ...] = (), align_steps=(0, 0, 0, 0),
        align_conversations: int = 3000, chat_prompt: str = "", align_configs=(),
        serve_messages=(), serve_smollm2: bool = False, quantize: str = "",
        guard_steps: int = 0) -> dict:
  """Runs every stage and returns the report (also written to workdir/report.json)."""
  report, clock, start = {"config": config.name}, StageClock(), time.perf_counter()
  if curation_config is not None:
    logging.info("[0/8] curation of the packaged sources")
    with clock("curation"):
      stats = curation_stage(curation_config, workdir)
    report["curation"] = {"kept_by_source": stats["kept_by_source"],
                          "removed": stats["removed"], "seconds": stats["seconds"]}
    config.data.source = "curated:" + os.path.abspath(os.path.join(workdir, "curated"))
    config.data.curated_sources = ",".join(pretrain_sources)
  logging.info("[1/8] data: documents -> tokenizer -> packed rows")
  with clock("data"):
    tokenizer, train_rows, heldout_rows = prepare_lm_data(config.data, workdir)
  report["data"] = {"train_rows": len(train_rows),
                    "packing_efficiency": round(train_rows.manifest["packing_efficiency"], 4),
                    "heldout_rows": int(len(heldout_rows["inputs"])),
                    "train_tokens": train_rows.manifest["tokens"],
                    "tokenizer_vocab": tokenizer.vocab_size}
  logging.info("[2/8] pretraining %s for %d steps", config.name, config.train.steps)
  with clock("pretrain"):
    task = LMTask(config, train_rows, heldout_rows)
    params = train(config, task, os.path.join(workdir, "pretrain"))["state"]["params"]
  report["pretrain"] = pretraining_report(config, os.path.join(workdir, "pretrain"))
  logging.info("[3/8] held-out perplexity")
  with clock("heldout"):
    report["heldout"] = heldout_report(config, task, params, tokenizer, train_rows,
                                       heldout_rows)
  logging.info("[4/8] sampling")
  with clock("sampling"):
    report["samples"] = samples(task, params, tokenizer, prompts, new_tokens)
  if align_steps is None or any(align_steps):
    logging.info("[5/8] alignment: %s", " -> ".join(ALIGNMENT_SEQUENCE))
    with clock("alignment"):
      report["alignment"], policy = alignment(config, task, params, tokenizer, workdir,
                                              align_steps, align_configs, align_conversations,
                                              chat_prompt, new_tokens)
    if quantize:
      logging.info("[6/8] quantizing the aligned model (%s)", quantize)
      with clock("quantization"):
        policy, report["quantization"] = quantize_for_serving(
            task.graphdef, jax.device_get(policy), tokenizer, quantize,
            config.model.max_seq_len)
    if serve_messages:
      logging.info("[7/8] serving the %saligned model%s with the engine",
                   "quantized " if quantize else "",
                   " and SmolLM2-135M-Instruct" if serve_smollm2 else "")
      with clock("serving"):
        report["serving"] = serving_report(task, policy, config, tokenizer,
                                           list(serve_messages), new_tokens, serve_smollm2)
    if guard_steps:
      logging.info("[8/8] safety: a guard, the chat served through it, a backdoor scan")
      with clock("safety"):
        report["safety"] = safety_report(workdir, task, policy, config, tokenizer,
                                         list(serve_messages), align_conversations,
                                         new_tokens, guard_steps)
  report["run_reports"] = write_stage_reports(workdir, {
      "pretrain": [os.path.join(workdir, "pretrain")],
      "alignment": [os.path.join(workdir, "align", name) for name in ALIGNMENT_SEQUENCE]})
  report["stage_seconds"] = clock.seconds
  report["seconds"] = time.perf_counter() - start
  write_json_atomic(os.path.join(workdir, "report.json"), report, indent=2, ensure_ascii=False)
  return report


def pretraining_report(config, workdir: str) -> dict:
  # The metrics file spans every run on this workdir, resumed ones included.
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    history = [json.loads(line) for line in f if line.strip()]
  return {"steps": config.train.steps,
          "first_loss": history[0]["loss"] if history else None,
          "final_loss": history[-1]["loss"] if history else None,
          "median_tokens_per_second": _median([h["tokens_per_second"] for h in history[1:]]),
          "median_mfu": _median([h["mfu"] for h in history[1:]])}


def heldout_report(config, task, params, tokenizer, train_rows, heldout_rows) -> dict:
  model = task.model(params)
  report = dict(model_perplexity(model, heldout_rows, config.train.batch_size),
                unigram_perplexity=unigram_perplexity(train_rows.to_arrays(), heldout_rows,
                                                      config.model.vocab_size))
  # Bits per byte compare across tokenizers: the same text as `llm.eval.run`'s bpb task.
  report["bits_per_byte_shakespeare"] = bits_per_byte(
      model, tokenizer, heldout_texts("shakespeare", 200_000),
      window=config.model.max_seq_len)["bits_per_byte"]
  return report


def samples(task, params, tokenizer, prompts: list[str], new_tokens: int) -> list[dict]:
  out = []
  for i, prompt in enumerate(prompts):
    ids = jnp.asarray([[tokenizer.bos_id] + tokenizer.encode(prompt)], jnp.int32)
    tokens = generate(task.graphdef, params, ids, jax.random.key(i), max_new_tokens=new_tokens)
    completion = tokens[0].tolist()
    if tokenizer.eos_id in completion:  # the document ended
      completion = completion[:completion.index(tokenizer.eos_id)]
    out.append({"prompt": prompt, "completion": tokenizer.decode(completion)})
  return out


def alignment(config, task, params, tokenizer, workdir, align_steps, align_configs,
              align_conversations, chat_prompt, new_tokens) -> dict:
  """The alignment sequence from the pretrained parameters, and each policy's chat reply;
  returns (report, the last policy's parameters)."""
  configs = sequence_configs(config, dict(zip(ALIGNMENT_SEQUENCE, align_configs)),
                             dict(zip(ALIGNMENT_SEQUENCE, align_steps or ())))
  configs[ALIGNMENT_SEQUENCE[0]].align.conversations = align_conversations
  aligned = run_sequence(configs, tokenizer, jax.device_get(params),
                         os.path.join(workdir, "align"))
  policies = {name: p for name, p in aligned.pop("params").items() if name != "reward_model"}
  aligned["chat"] = {"prompt": chat_prompt, **{
      f"reply_after_{name}": chat_reply(tokenizer, task.graphdef, policy, chat_prompt,
                                        new_tokens) for name, policy in policies.items()}}
  return aligned, list(policies.values())[-1]


def serving_report(task, policy, config, tokenizer, messages, new_tokens, smollm2) -> dict:
  """The engine serving the last aligned policy (and SmolLM2-135M-Instruct) to concurrent
  chat requests."""
  from llm.serve.showcase import serve_our_chat_model, serve_smollm2
  report = {"aligned": serve_our_chat_model(task.graphdef, jax.device_get(policy),
                                            config.model, tokenizer, messages, new_tokens)}
  if smollm2:
    report["smollm2_instruct"] = serve_smollm2(messages, 48)
  return report


def safety_report(workdir, task, policy, config, tokenizer, messages, conversations, new_tokens,
                  guard_steps) -> dict:
  """The guard trained on the pretrained model, the aligned chat served through it, and the
  backdoor scan of the chat-SFT data with the chat-SFT model."""
  from flax import nnx
  from llm.align.conversations import split_conversations
  from llm.serve.safety_showcase import safety_stage
  from llm.train.run_loading import load_trained_params, policy_params
  sft_dir = os.path.join(workdir, "align", "chat_sft")
  chat_sft = None
  if os.path.isdir(os.path.join(sft_dir, "checkpoints")):
    model = nnx.merge(task.graphdef, policy_params(load_trained_params(sft_dir)))
    chat_sft = (model, [c["turns"] for c in split_conversations(conversations)[0]])
  return safety_stage(workdir, task.graphdef, jax.device_get(policy), config.model, tokenizer,
                      messages, chat_sft, new_tokens, guard_steps)


def print_alignment(aligned: dict) -> None:
  sft = aligned["chat_sft"]
  print(f"\nchat SFT held-out assistant loss {sft['heldout_assistant_loss_before']:.3f} -> "
        f"{sft['heldout_assistant_loss_after']:.3f}")
  if "reward_model" in aligned:
    print("reward model held-out pair accuracy "
          f"{aligned['reward_model']['heldout']['accuracy']:.3f}")
  if "dpo" in aligned:
    before, after = aligned["dpo"]["heldout_before"], aligned["dpo"]["heldout_after"]
    print(f"DPO held-out preference accuracy {before['rewards/accuracy']:.3f} -> "
          f"{after['rewards/accuracy']:.3f}, margin {before['rewards/margin']:.3f} -> "
          f"{after['rewards/margin']:.3f}")
  if "ppo" in aligned:
    ppo = aligned["ppo"]
    print(f"{ppo['algo'].upper()} held-out reward {ppo['heldout_before']['score']:.3f} -> "
          f"{ppo['heldout_after']['score']:.3f}, KL to the reference "
          f"{ppo['heldout_before']['kl']:.3f} -> {ppo['heldout_after']['kl']:.3f} (bound "
          f"{ppo['max_kl']:g}, rollout max {ppo['rollout_kl_max']:.3f}); curves {ppo['curves']}")
  for key, reply in aligned["chat"].items():
    if key.startswith("reply_after_"):
      print(f"chat after {key[len('reply_after_'):]}: {aligned['chat']['prompt']!r} -> "
            f"{reply!r}")


def print_quantization(quantized: dict) -> None:
  memory = quantized["memory_bytes"]
  print(f"\nquantized the aligned model ({quantized['settings']}) in {quantized['seconds']} s: "
        f"held-out perplexity {quantized['perplexity_before']:.2f} -> "
        f"{quantized['perplexity_after']:.2f}; quantized weights "
        f"{memory['linear_held'] / 1e6:.2f} MB (float32 {memory['linear_float32'] / 1e6:.2f}"
        f" MB), whole model {memory['held'] / 1e6:.2f} MB (float32 "
        f"{memory['float32'] / 1e6:.2f} MB)")


def print_serving(serving: dict) -> None:
  for name, served in serving.items():
    print(f"\nserved {name}: {served['requests']} chat requests together, "
          f"{served['output_tokens_per_s']} output tokens/s, median time to first token "
          f"{served['ttft_median_s']} s, {served['compilations']} compilations")
    for entry in served["replies"]:
      print(f"  {entry['message']!r} -> {entry['reply']!r}")


def print_safety(safety: dict) -> None:
  for name in ("guard", "baseline"):
    m = safety["guard"][name]
    print(f"\n{name}: held-out AUROC prompts {m['prompt']['auroc']:.3f}, replies "
          f"{m['response']['auroc']:.3f}; false positives on benign prompts "
          f"{m['benign_prompt_false_positive_rate']:.1%}")
  for entry in safety["guarded_chat"]:
    print(f"guarded chat: {entry['message']!r} -> {entry['reply'][:80]!r}"
          f"{' (refused: ' + entry['refused'] + ')' if entry['refused'] else ''}")
  if "backdoor_scan" in safety:
    scan = safety["backdoor_scan"]
    print(f"backdoor scan of the SFT data: {scan['flagged_by_any']} of "
          f"{scan['conversations']} conversations flagged ({scan['flagged_share']:.2%})")


def _align_steps(values: list[str]):
  if values and len(values) != len(ALIGNMENT_SEQUENCE):
    raise app.UsageError(f"--align_steps takes {len(ALIGNMENT_SEQUENCE)} numbers "
                         f"({', '.join(ALIGNMENT_SEQUENCE)}), got {values}")
  return tuple(int(v) for v in values) if values else None


def _median(values):
  return sorted(values)[len(values) // 2] if values else None


def main(argv):
  del argv
  rerun_with_hugepages()
  configure_logging()
  config, curation = _CONFIG.value, _CURATION.value
  align_steps = _align_steps(_ALIGN_STEPS.value)
  conversations, new_tokens = _ALIGN_CONVERSATIONS.value, _NEW_TOKENS.value
  serve_smollm2, guard_steps = _SERVE_SMOLLM2.value, _GUARD_STEPS.value
  if _QUICK.value:  # its config values; the alignment and sampling flags if not given
    with config.unlocked():
      for field, value in QUICK["config"].items():
        section, name = field.split(".")
        config[section][name] = value
    for source, chars in QUICK["curation_chars"].items():
      curation.sources[source] = chars
    given = lambda name: flags.FLAGS[name].present
    align_steps = align_steps if given("align_steps") else QUICK["align_steps"]
    if not given("align_conversations"):
      conversations = QUICK["align_conversations"]
    new_tokens = new_tokens if given("new_tokens") else QUICK["new_tokens"]
    serve_smollm2 = serve_smollm2 if given("serve_smollm2") else QUICK["serve_smollm2"]
    guard_steps = guard_steps if given("guard_steps") else QUICK["guard_steps"]
  config = validated(config)
  report = run(config, _WORKDIR.value, _PROMPTS.value, new_tokens, curation,
               tuple(_PRETRAIN_SOURCES.value), align_steps, conversations, _CHAT_PROMPT.value,
               tuple(_ALIGN_CONFIGS.value), tuple(_SERVE_MESSAGES.value), serve_smollm2,
               _QUANTIZE.value, guard_steps)
  heldout = report["heldout"]
  print(f"\nheld-out perplexity {heldout['perplexity']:.1f} over {heldout['tokens']} tokens "
        f"(unigram baseline {heldout['unigram_perplexity']:.1f}); "
        f"{heldout['bits_per_byte_shakespeare']:.3f} bits per byte on held-out Shakespeare")
  for sample in report["samples"]:
    print(f"\n--- prompt: {sample['prompt']!r}\n{sample['prompt']}{sample['completion']}")
  if "alignment" in report:
    print_alignment(report["alignment"])
  if "quantization" in report:
    print_quantization(report["quantization"])
  if "serving" in report:
    print_serving(report["serving"])
  if "safety" in report:
    print_safety(report["safety"])
  print(f"\nstage wall time (s): {report['stage_seconds']}")
  print(f"report: {os.path.join(_WORKDIR.value, 'report.json')}")


if __name__ == "__main__":
  app.run(main)
