"""DPO vs PPO vs SFT (Rafailov et al. 2023, "Direct Preference Optimization") in miniature.

  python experiments/papers/dpo_vs_ppo.py [--workdir runs/dpo_vs_ppo] [--quick] [--scale S]

The lifecycle's chain (llm.lifecycle.run: curation -> pretraining -> chat SFT -> reward model ->
DPO and PPO) trains the models; more DPO betas and PPO KL coefficients start from the chain's
SFT model and reward model through `llm.main.run`, so each method is a frontier of points.
On held-out prompts (first user turns of held-out conversations, used by no training stage)
every policy samples one reply per prompt (temperature 1, the same seed for all), and we measure
the reward model's score, the KL to the SFT reference on the policy's own samples, win rates
against SFT by the reward model, and by SmolLM2-135M-Instruct as an independent judge read in
both answer orders. Writes experiments/papers/results/dpo_vs_ppo.{json,png,md}.
"""

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from experiments.papers.dpo_judge import SmolJudge, win_rate  # noqa: E402
from experiments.papers import dpo_report  # noqa: E402
from llm import lifecycle  # noqa: E402
from llm.align import registry  # noqa: E402
from llm.align.chat_data import fixed_length_prompts  # noqa: E402
from llm.align.conversations import first_user_messages, split_conversations  # noqa: E402
from llm.align.preferences import preference_pairs  # noqa: E402
from llm.align.sequence import sequence_configs  # noqa: E402
from llm.config import load_experiment, validate  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.model.factory import abstract_model  # noqa: E402
from llm.model.sampling import generate  # noqa: E402
from llm.runtime import configure_logging, rerun_with_hugepages  # noqa: E402
from llm.tokenizer import load_tokenizer  # noqa: E402
from llm.tokenizer.base import IM_END, IM_START  # noqa: E402
from llm.tokenizer.chat import render_chat  # noqa: E402
from llm.train.run_loading import load_trained_params, policy_params  # noqa: E402
from llm.train.scalar_head import scalar_head  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ALIGN_STEPS = (200, 150, 80, 120)  # the lifecycle's chat_sft, reward_model, dpo, ppo
# The chain trains DPO at beta 0.1 and PPO at kl_coef 0.1; the sweep adds the others.
DPO_BETAS, PPO_KL_COEFS = (0.05, 0.1, 0.5), (0.03, 0.1, 0.3)
QUICK_SWEEP = {"dpo": (0.1, 0.5), "ppo": (0.1, 0.3)}


def settings_from(args) -> dict:
  """Steps, data and sweep of a run: the lifecycle's defaults times --scale, or its --quick."""
  scale = args.scale
  if args.quick:
    quick = lifecycle.QUICK
    return {"pretrain_steps": quick["config"]["train.steps"],
            "max_chars": quick["config"]["data.max_chars"],
            "curation_chars": quick["curation_chars"],
            "align_steps": tuple(quick["align_steps"]),
            "conversations": quick["align_conversations"], "prompts": args.prompts or 16,
            "dpo_betas": QUICK_SWEEP["dpo"], "ppo_kl_coefs": QUICK_SWEEP["ppo"]}
  return {"pretrain_steps": int(1200 * scale), "max_chars": None, "curation_chars": None,
          "align_steps": tuple(int(s * scale) for s in ALIGN_STEPS),
          "conversations": int(3000 * scale), "prompts": args.prompts or int(200 * scale),
          "dpo_betas": DPO_BETAS, "ppo_kl_coefs": PPO_KL_COEFS}


def pretrain_config(settings: dict):
  config = load_experiment("tiny")
  config.train.steps, config.train.progress = settings["pretrain_steps"], False
  if settings["max_chars"]:
    config.data.max_chars = settings["max_chars"]
  return validate(config)


def run_chain(config, settings: dict, workdir: str) -> dict:
  """The lifecycle from curation to DPO and PPO (no quantization, serving or safety)."""
  curation = load_experiment("data_packaged")
  for source, chars in (settings["curation_chars"] or {}).items():
    curation.sources[source] = chars
  report = lifecycle.run(config, workdir, prompts=[], new_tokens=24, curation_config=curation,
                         pretrain_sources=("shakespeare",), align_steps=settings["align_steps"],
                         align_conversations=settings["conversations"],
                         chat_prompt="What is the capital of France?")
  return {"stage_seconds": report["stage_seconds"], "heldout": report["heldout"],
          "alignment": report["alignment"]}


def sweep_run(config, settings: dict, workdir: str, name: str, **align) -> str:
  """One more DPO or PPO run from the chain's SFT model (PPO: and its reward model)."""
  steps = dict(zip(("chat_sft", "reward_model", "dpo", "ppo"), settings["align_steps"]))
  run_config = sequence_configs(config, steps={name: steps[name]})[name]
  run_config.train.progress = False
  run_config.align.conversations = settings["conversations"]
  run_config.align.init_from = os.path.join(workdir, "align", "chat_sft")
  run_config.data.tokenizer_path = os.path.join(workdir, "data", "tokenizer.model")
  if name == "ppo":
    run_config.align.reward_model_from = os.path.join(workdir, "align", "reward_model")
  for key, value in align.items():
    run_config.align[key] = value
  tag = "_".join(f"{k}{v:g}" for k, v in align.items())
  run_dir = os.path.join(workdir, "sweep", f"{name}_{tag}")
  run_objective(run_config, run_dir)
  return run_dir


def run_objective(config, workdir: str) -> dict:
  """What `llm.main.run` does (that module's absl flags clash with the lifecycle's, so it is
  not imported): the registry's objective trained from its earlier runs, its report written."""
  registry.check_run_config(config)
  objective = registry.get(config.train.task)
  _, report = objective.train(config, objective.inputs(config, workdir), workdir)
  write_json_atomic(os.path.join(workdir, "report.json"), report, indent=2)
  return report


def policy_runs(config, settings: dict, workdir: str) -> dict:
  """{label: (method, knob value, workdir)}: SFT, the DPO betas and the PPO KL coefficients."""
  align = os.path.join(workdir, "align")
  runs = {"SFT": ("sft", 0.0, os.path.join(align, "chat_sft"))}
  for beta in settings["dpo_betas"]:
    run_dir = os.path.join(align, "dpo") if beta == 0.1 else sweep_run(
        config, settings, workdir, "dpo", dpo_beta=beta)
    runs[f"DPO beta={beta:g}"] = ("dpo", beta, run_dir)
  for coef in settings["ppo_kl_coefs"]:
    run_dir = os.path.join(align, "ppo") if coef == 0.1 else sweep_run(
        config, settings, workdir, "ppo", kl_coef=coef)
    runs[f"PPO kl_coef={coef:g}"] = ("ppo", coef, run_dir)
  return runs


def message_tokens(tokenizer, prompt_tokens: int) -> int:
  """Tokens of user text in a prompt of `prompt_tokens` (the rest is the chat template)."""
  frame = render_chat(tokenizer, [{"role": "user", "content": ""}], add_generation_prompt=True)
  return prompt_tokens - len(frame[0])


def heldout_prompts(tokenizer, conversations: int, prompt_tokens: int, count: int):
  """([count, prompt_tokens] chat-template prompts, their user messages as text, each
  conversation's own first reply) from the held-out conversations' first turns."""
  _, heldout = split_conversations(conversations)
  rows, replies = [], []
  for conversation in heldout:
    turns = conversation["turns"]
    reply = next((t["content"] for t in turns if t["role"] == "assistant"), None)
    messages = first_user_messages([conversation])
    row = fixed_length_prompts(tokenizer, messages, prompt_tokens) if reply and messages else []
    if len(row) and len(rows) < count:
      rows.append(row[0])
      replies.append(reply)
  prompts = np.asarray(rows, np.int32).reshape(len(rows), prompt_tokens)
  header = [tokenizer.special_id(IM_START)] + tokenizer.encode("user") + tokenizer.encode("\n")
  text_tokens = message_tokens(tokenizer, prompt_tokens)
  messages = [tokenizer.decode(row[len(header):len(header) + text_tokens].tolist())
              for row in prompts]
  return prompts, messages, replies


def make_stats(graphdef):
  """Jitted (policy, reference, reward model, tokens, response mask) -> per reply: KL to the
  reference summed over the reply's tokens, the reward model's score at the reply's final
  token (where it was trained to read), the score one token earlier (where PPO reads it) and
  the reply's length."""
  def logprobs(params, tokens):
    logits = nnx.merge(graphdef, params)(tokens[:, :-1])
    return jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens[:, 1:, None], -1)[..., 0]

  def stats(policy, reference, reward, tokens, mask):
    prompt_len = tokens.shape[1] - mask.shape[1]
    shifted = jnp.concatenate([jnp.zeros((len(tokens), prompt_len - 1)), mask], axis=1)
    kl = jnp.sum((logprobs(policy, tokens) - logprobs(reference, tokens)) * shifted, axis=1)
    length = jnp.sum(mask, axis=1).astype(jnp.int32)
    features = nnx.merge(graphdef, reward["model"]).features(tokens)
    end = prompt_len + jnp.maximum(length, 1) - 1
    score = scalar_head(reward["head"], features, at=end)
    score_ppo = scalar_head(reward["head"], features, at=end - 1)
    return kl, score, score_ppo, length

  return jax.jit(stats)


def sample_replies(graphdef, stats, params, reference, reward, prompts, new_tokens, seed,
                   stop_id) -> dict:
  """One reply per prompt at temperature 1 (so the KL estimate is of the policy's own
  distribution), cut after the first stop token, and its statistics."""
  responses = generate(graphdef, params, jnp.asarray(prompts), jax.random.key(seed),
                       max_new_tokens=new_tokens, temperature=1.0, top_k=0)
  is_stop = responses == stop_id
  mask = ((jnp.cumsum(is_stop, axis=1) - is_stop) == 0).astype(jnp.float32)
  tokens = jnp.concatenate([jnp.asarray(prompts), responses], axis=1)
  kl, score, score_ppo, length = (np.asarray(x) for x in stats(params, reference, reward,
                                                               tokens, mask))
  return {"responses": np.asarray(responses), "kl": kl, "score": score,
          "score_ppo_read": score_ppo, "length": length,
          "ended": np.asarray(jnp.any(is_stop, axis=1))}


def _mean_se(values) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def evaluate_policies(runs: dict, workdir: str, prompts, tokenizer, model_config,
                      new_tokens: int, seed: int) -> tuple[dict, dict]:
  """Per policy: (summary numbers, reply texts)."""
  graphdef = nnx.split(abstract_model(model_config), nnx.Param)[0]
  stats = make_stats(graphdef)
  as_jax = functools.partial(jax.tree.map, jnp.asarray)
  reference = as_jax(policy_params(load_trained_params(runs["SFT"][2])))
  reward = as_jax(load_trained_params(os.path.join(workdir, "align", "reward_model")))
  stop_id = tokenizer.special_id(IM_END)
  raw, summary, texts = {}, {}, {}
  for label, (method, knob, run_dir) in runs.items():
    params = as_jax(policy_params(load_trained_params(run_dir)))
    raw[label] = sample_replies(graphdef, stats, params, reference, reward, prompts,
                                new_tokens, seed, stop_id)
    r = raw[label]
    texts[label] = [tokenizer.decode(row[:n - int(e)].tolist()) for row, n, e in
                    zip(r["responses"], r["length"], r["ended"])]
    kl, kl_se = _mean_se(r["kl"])
    score, score_se = _mean_se(r["score"])
    # Paired with SFT's reply to the same prompt: the prompts' spread in score cancels.
    gain, gain_se = _mean_se(r["score"] - raw["SFT"]["score"])
    gain_ppo, gain_ppo_se = _mean_se(r["score_ppo_read"] - raw["SFT"]["score_ppo_read"])
    summary[label] = {"method": method, "knob": knob, "run": run_dir, "kl": kl, "kl_se": kl_se,
                      "rm_score": score, "rm_score_se": score_se,
                      "rm_gain": gain, "rm_gain_se": gain_se,
                      "rm_score_ppo_read": float(np.mean(r["score_ppo_read"])),
                      "rm_gain_ppo_read": gain_ppo, "rm_gain_ppo_read_se": gain_ppo_se,
                      "reply_tokens": float(np.mean(r["length"])),
                      "ended_share": float(np.mean(r["ended"])),
                      "rm_vs_sft": win_rate(r["score"], raw["SFT"]["score"]),
                      "rm_scores": [round(float(s), 4) for s in r["score"]]}
    print(f"  {label:>18}: KL {kl:6.3f} +- {kl_se:.3f}, RM score {score:6.3f} +- "
          f"{score_se:.3f} (gain over SFT {gain:+.3f} +- {gain_se:.3f}), RM win vs SFT "
          f"{summary[label]['rm_vs_sft']['win_rate']:.3f}", flush=True)
  return summary, texts


def judge_check_pairs(tokenizer, conversations: int, text_tokens: int, reply_tokens: int,
                      count: int) -> tuple[list, list, list]:
  """Held-out (message, its own reply, another conversation's reply), cut to the length of the
  policies' prompts and replies: the judge must prefer the on-topic reply to be worth reading."""
  _, heldout = split_conversations(conversations)
  pairs = [p for p in preference_pairs(heldout, seed=1) if p["kind"] == "off_topic"][:count]
  cut = lambda text, n: tokenizer.decode(tokenizer.encode(text)[:n])
  return ([cut(p["prompt"][0]["content"], text_tokens) for p in pairs],
          [cut(p["chosen"], reply_tokens) for p in pairs],
          [cut(p["rejected"], reply_tokens) for p in pairs])


def judge_policies(summary: dict, texts: dict, messages: list[str], labels: list[str],
                   checks: dict) -> dict:
  """SmolLM2's two-order verdict of each labelled policy against SFT; returns its verdicts on
  the check pairs ({name: (messages, better replies, worse replies)})."""
  judge, out, validity = SmolJudge(), {}, {}
  for name, pairs in checks.items():
    started = time.perf_counter()
    v = validity[name] = dict(judge.compare(*pairs),
                              seconds=round(time.perf_counter() - started, 1))
    print(f"  check {name}: SmolLM2 prefers the first {v['win_rate']:.3f} +- {v['se']:.3f} of "
          f"{v['n']} pairs, picked A {v['picked_a_share']:.2f} ({v['seconds']:.0f} s)",
          flush=True)
  for label in labels:
    started = time.perf_counter()
    out[label] = judge.compare(messages, texts[label], texts["SFT"])
    out[label]["seconds"] = round(time.perf_counter() - started, 1)
    summary[label]["judge_vs_sft"] = out[label]
    v = out[label]
    print(f"  {label}: SmolLM2 win vs SFT {v['win_rate']:.3f} +- {v['se']:.3f} (votes "
          f"{v['win_rate_votes']:.3f}), orders agree {v['order_agreement']:.2f}, picked A "
          f"{v['picked_a_share']:.2f} ({v['seconds']:.0f} s)", flush=True)
  return validity


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/dpo_vs_ppo")
  parser.add_argument("--quick", action="store_true", help="smoke run: fewer steps and prompts")
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiplies training steps, conversations and prompts")
  parser.add_argument("--prompts", type=int, default=0, help="held-out prompts (0: 200 x scale)")
  parser.add_argument("--judge_all", action="store_true",
                      help="the SmolLM2 judge on every point, not only DPO and PPO at 0.1")
  parser.add_argument("--new_tokens", type=int, default=24, help="tokens per reply")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=RESULTS, help="folder of the json, png and md")
  return parser.parse_args(argv)


def main():
  rerun_with_hugepages()
  configure_logging()
  args = parse_args()
  started, clock = time.perf_counter(), {}
  fresh = not os.path.exists(os.path.join(args.workdir, "align", "ppo", "report.json"))
  settings = settings_from(args)
  config = pretrain_config(settings)
  print(f"[1/4] lifecycle chain in {args.workdir}: pretrain {settings['pretrain_steps']} "
        f"steps, alignment {settings['align_steps']}", flush=True)
  chain = run_chain(config, settings, args.workdir)
  clock["chain"] = time.perf_counter() - started
  print(f"[2/4] sweep: DPO betas {settings['dpo_betas']}, PPO kl_coefs "
        f"{settings['ppo_kl_coefs']}", flush=True)
  runs = policy_runs(config, settings, args.workdir)
  clock["sweep"] = time.perf_counter() - started - clock["chain"]
  tokenizer = load_tokenizer(os.path.join(args.workdir, "data", "tokenizer.model"))
  prompt_tokens = load_experiment("ppo_tiny").align.prompt_tokens
  prompts, messages, replies = heldout_prompts(tokenizer, settings["conversations"],
                                               prompt_tokens, settings["prompts"])
  print(f"[3/4] {len(prompts)} held-out prompts: sampling, KL and reward-model scores",
        flush=True)
  summary, texts = evaluate_policies(runs, args.workdir, prompts, tokenizer, config.model,
                                     args.new_tokens, args.seed)
  clock["evaluate"] = time.perf_counter() - started - clock["chain"] - clock["sweep"]
  main_labels = ["DPO beta=0.1", "PPO kl_coef=0.1"]
  judged = [label for label in runs if label != "SFT"] if args.judge_all else main_labels
  print(f"[4/4] SmolLM2-135M-Instruct judges {', '.join(judged)} against SFT", flush=True)
  checks = {"own_vs_off_topic": judge_check_pairs(
      tokenizer, settings["conversations"], message_tokens(tokenizer, prompt_tokens),
      args.new_tokens, len(messages)),
             "own_vs_sft_sample": (messages, [tokenizer.decode(tokenizer.encode(r)[
                 :args.new_tokens]) for r in replies], texts["SFT"])}
  judge_check = judge_policies(summary, texts, messages, judged, checks)
  clock["judge"] = time.perf_counter() - started - sum(clock.values())
  result = dpo_report.assemble(args, settings, chain, summary, texts, messages, main_labels,
                               judge_check)
  result.update(wall_seconds=round(time.perf_counter() - started, 1), fresh_workdir=fresh,
                phase_seconds={k: round(v, 1) for k, v in clock.items()})
  dpo_report.write_all(result, args.out)
  print(f"verdict: {result['verdict']['verdict']} ({result['wall_seconds']:.0f} s); "
        f"results in {args.out}", flush=True)


if __name__ == "__main__":
  main()
