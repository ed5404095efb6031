"""What a run leaves in its workdir, read back: `metrics.jsonl` (one record per step, eval
metrics on eval steps), `events.jsonl` (stability incidents), `config.json`, `report.json`."""

import json
import math
import os

# Metrics where lower is better; the best value of each is reported beside the final one.
LOWER_IS_BETTER = ("loss", "eval_loss", "eval_perplexity", "perplexity", "lm_loss")


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSONL file ([] if absent); a torn last line (a killed writer) is skipped."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return records


def read_json(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
  """(steps, values) of one metric over the records that have it, non-finite values dropped."""
  steps, values = [], []
  for record in records:
    value = record.get(key)
    if isinstance(value, (int, float)) and math.isfinite(value):
      steps.append(record["step"])
      values.append(float(value))
  return steps, values


def summarize(workdir: str) -> dict:
  """{"status", "steps", "final": {metric: last value}, "best": {metric: min}, "incidents"};
  a run is done once it wrote report.json or logged the config's last step."""
  records = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  planned = read_json(os.path.join(workdir, "config.json")).get("train", {}).get("steps")
  done = (os.path.exists(os.path.join(workdir, "report.json")) or
          bool(records and planned and records[-1]["step"] >= planned))
  status = "done" if done else ("partial" if records else "not started")
  final = {}
  for record in records:
    final.update({k: v for k, v in record.items() if k != "step"})
  best = {}
  for key in LOWER_IS_BETTER:
    _, values = series(records, key)
    if values:
      best[key] = min(values)
  return {"status": status, "steps": records[-1]["step"] if records else 0, "final": final,
          "best": best, "incidents": len(read_jsonl(os.path.join(workdir, "events.jsonl")))}
