"""FIM for free (Bavarian et al. 2022) in miniature: fill-in-the-middle training at rate 0, 0.5
and 0.9 on the same tokens; left-to-right held-out loss and single-line infill exact match.

  python experiments/papers/fim.py [--scale 4] [--quick] [--workdir runs/papers/fim]

One tokenizer (with the FIM control tokens) and one document list from the packaged Python
standard library; each FIM rate packs the same documents with the same seed and trains the
same decoder for the same steps. The files are cut into line-aligned snippets of about a
row's length first: rows are attended to alone, so a whole-file FIM sample would put the
prefix thousands of tokens before its middle, out of sight; the paper's documents mostly fit
its context. Held-out L2R loss is on held-out snippets packed without FIM. Infill cases are
`llm.eval.fim.fim_cases` windows of held-out files (one line removed), prompted in PSM order
(`fim_prompt`, as `llm.eval.run` does) and in SPM order (the paper's other inference mode),
decoded greedily and scored by `fim_exact_match`. Exact match is coarse for small models, so
the teacher-forced loss of each removed line is also measured with the FIM prompt and from
the prefix alone: their difference is what the suffix is worth to the model.
Writes experiments/papers/results/fim.{json,png,md}.
"""

import argparse
import logging
import math
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.papers import fim_report  # noqa: E402
from llm.config import load_experiment  # noqa: E402
from llm.data.loader import eval_batches  # noqa: E402
from llm.data.packing import ROW_KEYS  # noqa: E402
from llm.data.prepare import training_documents  # noqa: E402
from llm.data.tokenize_pack import PackSettings, PackedRows, tokenize_and_pack  # noqa: E402
from llm.eval.fim import fim_cases, fim_exact_match, fim_prompt  # noqa: E402
from llm.io import write_json_atomic, write_text_atomic  # noqa: E402
from llm.model.sampling import complete_many  # noqa: E402
from llm.tokenizer import train_tokenizer  # noqa: E402
from llm.tokenizer.base import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX  # noqa: E402
from llm.train.flops import parameter_counts  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402
from llm.train.losses import masked_cross_entropy  # noqa: E402
from llm.train.partition import merge  # noqa: E402

RATES = (0.0, 0.5, 0.9)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SNIPPET_CHARS = 640   # about 200 tokens: a FIM sample mostly fits one 256-token row
CASE_BLOCK_LINES = 24  # fim_cases takes one case per document: cut held-out files into blocks


def settings_for(scale: float, quick: bool) -> dict:
  """Model and run sizes; --scale multiplies steps, data and (by its square root) width."""
  if quick:
    return {"d_model": 64, "layers": 1, "steps": 12, "batch": 8, "train_chars": 150_000,
            "heldout_rows": 16, "cases": 12, "new_tokens": 12, "max_chars": 600_000}
  width = max(1, round(math.sqrt(scale)))
  # 1000 steps of 8 x 256 tokens (2M tokens, about one pass over 6.5M characters at ~3.1
  # characters a token): about 3.5 minutes a FIM rate on two CPU cores.
  return {"d_model": 128 * width, "layers": 3, "steps": int(1000 * scale), "batch": 8,
          "train_chars": int(6_500_000 * scale), "heldout_rows": 384, "cases": 300,
          "new_tokens": 32, "max_chars": 14_000_000}


def make_config(s: dict, rate: float):
  """The tiny decoder at 256 tokens, widened by `s`, with FIM at `rate`."""
  config = load_experiment("tiny")
  m = config.model
  m.d_model, m.num_layers = s["d_model"], s["layers"]
  m.num_heads, m.num_kv_heads, m.head_dim = max(2, s["d_model"] // 32), 2, 32
  m.num_kv_heads = min(m.num_kv_heads, m.num_heads)
  m.mlp_dim = s["d_model"] * 11 // 4
  m.max_seq_len = m.rope.original_max_seq_len = 256
  d = config.data
  d.source, d.seq_len, d.heldout_fraction = "python_stdlib", 256, 0.05
  d.max_chars, d.fim_rate, d.fim_spm_rate = s["max_chars"], rate, 0.5
  t = config.train
  t.steps, t.batch_size, t.eval_every = s["steps"], s["batch"], s["steps"]
  t.eval_batches, t.progress = 2, sys.stderr.isatty()
  config.optim.warmup_steps = min(config.optim.warmup_steps, s["steps"] // 4)
  t.peak_flops = 1e11  # MFU is not reported; skips measuring the matmul peak in every run
  config.checkpoint.every_steps = s["steps"]
  return config


def snippets(text: str, max_chars: int = SNIPPET_CHARS) -> list[str]:
  """Consecutive whole lines, joined up to about `max_chars` (a longer line stands alone)."""
  out, lines, size = [], [], 0
  for line in text.split("\n"):
    if lines and size + len(line) + 1 > max_chars:
      out.append("\n".join(lines))
      lines, size = [], 0
    lines.append(line)
    size += len(line) + 1
  if lines and "".join(lines).strip():
    out.append("\n".join(lines))
  return [s for s in out if s.strip()]


def blocks(text: str, lines: int = CASE_BLOCK_LINES) -> list[str]:
  rows = text.split("\n")
  return ["\n".join(rows[i:i + lines]) for i in range(0, len(rows) - lines + 1, lines)]


def _shuffled(items: list, seed: int) -> list:
  return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]


def prepare(s: dict, workdir: str) -> dict:
  """Documents, the shared tokenizer, held-out rows and infill cases (same for every rate)."""
  config = make_config(s, 0.0)
  train_docs, heldout = training_documents(config.data)
  # Shuffled snippets, so a character budget samples the whole library, not its first folders.
  train_texts, size = [], 0
  for piece in _shuffled([p for d in train_docs for p in snippets(d["text"])], config.seed):
    if size >= s["train_chars"]:
      break
    train_texts.append(piece)
    size += len(piece)
  tok_path = os.path.join(workdir, "tokenizer.model")
  tokenizer = train_tokenizer(train_texts, config.data.tokenizer_vocab_size, tok_path)
  heldout_texts = _shuffled([p for text in heldout for p in snippets(text)], config.seed)
  folder = os.path.join(workdir, "heldout")
  tokenize_and_pack(heldout_texts, tok_path, folder, PackSettings(config.data.seq_len))
  rows = PackedRows(folder).to_arrays()
  available = len(rows["inputs"])
  rows = {k: v[:s["heldout_rows"]] for k, v in rows.items()}
  # Prompts longer than this would run past the 256-token context once padded and decoded.
  budget = config.model.max_seq_len - 64 - s["new_tokens"] - 1
  case_blocks = _shuffled([b for t in heldout for b in blocks(t)], config.seed)
  cases = [c for c in fim_cases(case_blocks, 4 * s["cases"])
           if len(fim_prompt(tokenizer, c)) <= budget][:s["cases"]]
  print(f"data: {len(train_texts)} train snippets ({size / 1e6:.2f}M chars), "
        f"{len(heldout)} held-out files -> {len(rows['inputs'])} of {available} rows of "
        f"{config.data.seq_len} tokens, {len(cases)} infill cases", flush=True)
  return {"train_texts": train_texts, "tokenizer": tokenizer, "tok_path": tok_path,
          "heldout_rows": rows, "cases": cases, "train_chars": size,
          "heldout_files": len(heldout)}


def row_losses(model, rows: dict, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(summed cross-entropy, scored tokens) per held-out row, for paired standard errors."""
  @jax.jit
  def batch_rows(batch):
    logits = model(batch["inputs"], batch["positions"], batch["segment_ids"])
    loss, tokens = jax.vmap(masked_cross_entropy)(logits, batch["targets"], batch["loss_mask"])
    return loss * tokens, tokens

  sums, counts = [], []
  for batch in eval_batches(rows, batch_size, max_batches=1 << 30):
    loss_sum, tokens = jax.device_get(batch_rows(batch))
    sums.append(loss_sum)
    counts.append(tokens)
  n = len(rows["inputs"])
  return np.concatenate(sums)[:n], np.concatenate(counts)[:n]


def context_ids(tokenizer, case: dict, layout: str) -> list[int]:
  """What precedes the middle line: the PSM or SPM prompt (`llm/tokenizer/fim.py` layouts),
  or the prefix alone (all a left-to-right model can use). Every packed document starts with
  BOS, so these do too."""
  if layout == "psm":
    return [tokenizer.bos_id] + fim_prompt(tokenizer, case)
  if layout == "spm":  # suffix first, then the prefix runs straight into the middle
    pre, suf, mid = (tokenizer.special_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
    return ([tokenizer.bos_id, pre, suf] + tokenizer.encode(case["suffix"]) + [mid] +
            tokenizer.encode(case["prefix"]))
  return [tokenizer.bos_id] + tokenizer.encode(case["prefix"])


def middle_rows(tokenizer, cases: list[dict], seq_len: int, layout: str) -> dict:
  """One row per case scoring only its middle line after `context_ids`."""
  rows = {k: np.zeros((len(cases), seq_len), np.int32) for k in ROW_KEYS}
  for r, case in enumerate(cases):
    context = context_ids(tokenizer, case, layout)
    ids = (context + tokenizer.encode(case["middle"]))[:seq_len + 1]
    n = len(ids) - 1
    rows["inputs"][r, :n], rows["targets"][r, :n] = ids[:-1], ids[1:]
    rows["segment_ids"][r, :n], rows["positions"][r, :n] = 1, np.arange(n)
    rows["loss_mask"][r, len(context) - 1:n] = 1
  return rows


def infill(task, params, tokenizer, cases: list[dict], new_tokens: int, layout: str) -> dict:
  """Greedy infilling of every case; exact match of the first written line."""
  prompts = [context_ids(tokenizer, c, layout) for c in cases]
  written = complete_many(task.graphdef, params, prompts, new_tokens,
                          stop_ids=(tokenizer.eos_id,), batch_size=16)
  by_case = {id(c): tokenizer.decode(w) for c, w in zip(cases, written)}
  return fim_exact_match(lambda c: by_case[id(c)], cases)


def train_rate(s: dict, data: dict, rate: float, workdir: str):
  """Packs the shared documents at FIM `rate` and trains; (task, params, packed, result)."""
  config = make_config(s, rate)
  folder = os.path.join(workdir, f"train_fim{rate}")
  packed = tokenize_and_pack(data["train_texts"], data["tok_path"], folder,
                             PackSettings(config.data.seq_len, rate, config.data.fim_spm_rate,
                                          seed=config.seed),
                             shards=8, workers=config.data.pack_workers)
  print(f"FIM {rate}: packed {packed['rows']} rows, layouts {packed['layouts']}; training "
        f"{config.train.steps} steps", flush=True)
  task = LMTask(config, PackedRows(folder), data["heldout_rows"])
  result = train(config, task, os.path.join(workdir, f"run_fim{rate}"))
  return task, merge(result["state"]["params"], result["frozen"]), packed, result


def run_rate(s: dict, data: dict, rate: float, workdir: str) -> dict:
  """Trains at FIM `rate`; measures held-out L2R loss, infill exact match and the
  teacher-forced loss of the middle lines."""
  started = time.perf_counter()
  task, params, packed, result = train_rate(s, data, rate, workdir)
  train_seconds = time.perf_counter() - started
  model, batch, tok = task.model(params), task.config.train.batch_size, data["tokenizer"]
  sums, tokens = row_losses(model, data["heldout_rows"], batch)
  em = {layout: infill(task, params, tok, data["cases"], s["new_tokens"], layout)
        for layout in fim_report.LAYOUTS}
  middle = {k: row_losses(model, middle_rows(tok, data["cases"], task.config.data.seq_len, k),
                          batch) for k in (*fim_report.LAYOUTS, "prefix_only")}
  last = result["history"][-1] if result["history"] else {}
  out = {"rate": rate, "loss": float(sums.sum() / tokens.sum()),
         "train_loss": float(last.get("loss", float("nan"))),
         "em": {k: v["exact_match"] for k, v in em.items()}, "em_n": len(data["cases"]),
         "middle": {k: float(a.sum() / b.sum()) for k, (a, b) in middle.items()},
         "train_rows": packed["rows"], "layouts": packed["layouts"],
         "train_seconds": train_seconds, "seconds": time.perf_counter() - started,
         "row_loss_sums": sums.tolist(), "row_tokens": tokens.tolist(),
         "middle_sums": {k: a.tolist() for k, (a, _) in middle.items()},
         "middle_tokens": middle["psm"][1].tolist(),
         "infill_examples": {k: v["records"][:12] for k, v in em.items()}}
  print(f"FIM {rate}: held-out L2R loss {out['loss']:.4f}; infill exact match " +
        ", ".join(f"{k.upper()} {100 * v:.1f}%" for k, v in out["em"].items()) +
        f" of {out['em_n']}; middle-line loss " +
        ", ".join(f"{k} {v:.3f}" for k, v in out["middle"].items()) +
        f" ({out['seconds']:.0f}s)", flush=True)
  return out


def summarize(runs: dict) -> dict:
  """Adds paired relative loss changes against FIM-0, what the suffix is worth to each model
  (middle-line loss from the prefix alone minus with the FIM prompt, paired by case), and
  the verdict."""
  base = runs[0.0]
  for run in runs.values():
    delta, se = fim_report.paired_delta(run["row_loss_sums"], base["row_loss_sums"],
                                        base["row_tokens"])
    run["rel_change"], run["rel_se"] = delta / base["loss"], se / base["loss"]
    sums, tokens = run["middle_sums"], run["middle_tokens"]
    run["suffix_gain"] = {k: fim_report.paired_delta(sums["prefix_only"], sums[k], tokens)
                          for k in fim_report.LAYOUTS}
    run["middle_se"] = {k: fim_report.ratio_se(v, tokens) for k, v in sums.items()}
  return fim_report.verdict(runs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiplies steps and train data; width by its square root")
  parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
  parser.add_argument("--workdir", default="runs/papers/fim")
  parser.add_argument("--out", default="", help="results folder (default: "
                      "experiments/papers/results; --quick: WORKDIR/results)")
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  started = time.perf_counter()
  command = " ".join(["python experiments/papers/fim.py", *sys.argv[1:]])
  out_dir = args.out or (os.path.join(args.workdir, "results") if args.quick else RESULTS)
  shutil.rmtree(args.workdir, ignore_errors=True)  # train() resumes from old checkpoints
  os.makedirs(out_dir, exist_ok=True)
  s = settings_for(args.scale, args.quick)
  data = prepare(s, args.workdir)
  runs = {rate: run_rate(s, data, rate, args.workdir) for rate in RATES}
  judged = summarize(runs)
  seconds = time.perf_counter() - started
  config = make_config(s, 0.0)
  settings = dict(s, params=parameter_counts(config.model)["total"],
                  train_tokens=s["steps"] * s["batch"] * config.data.seq_len,
                  heldout_tokens=int(sum(runs[0.0]["row_tokens"])), seq_len=config.data.seq_len,
                  train_chars_used=data["train_chars"], heldout_files=data["heldout_files"],
                  fim_spm_rate=config.data.fim_spm_rate, seed=config.seed, scale=args.scale,
                  quick=args.quick, snippet_chars=SNIPPET_CHARS)
  md = fim_report.markdown(runs, judged, settings, command, seconds)
  write_json_atomic(os.path.join(out_dir, "fim.json"),
                    {"command": command, "wall_seconds": seconds, "settings": settings,
                     "claims": {"l2r": fim_report.CLAIM_L2R, "infill": fim_report.CLAIM_EM},
                     "verdict": judged, "runs": {str(r): v for r, v in runs.items()}}, indent=2)
  fim_report.plot(runs, os.path.join(out_dir, "fim.png"))
  write_text_atomic(os.path.join(out_dir, "fim.md"), md)
  print(md)
  print(f"wrote {out_dir}/fim.{{json,png,md}} in {seconds / 60:.1f} min", flush=True)


if __name__ == "__main__":
  main()
