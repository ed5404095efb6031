"""Curation statistics: what each stage kept and removed, per source and per language."""

import collections
import os
import re

from llm.io import write_json_atomic, write_text_atomic

_CJK_OR_HANGUL = re.compile("[\u3000-\u9fff\uac00-\ud7af]")


def estimate_tokens(text: str) -> int:
  """A tokenizer-free estimate: ~1.3 tokens per whitespace word, 1 per CJK character."""
  return int(1.3 * len(text.split()) + len(_CJK_OR_HANGUL.findall(text)))


class CurationStats:
  """Counts documents and estimated tokens by outcome, source and language."""

  def __init__(self):
    self.removed = collections.Counter()         # reason -> documents
    self.removed_by_source = collections.Counter()  # (source, stage) -> documents
    self.kept_by_source = collections.Counter()
    self.kept_by_language = collections.Counter()
    self.tokens_by_source = collections.Counter()
    self.events = collections.Counter()          # e.g. pii:EMAIL -> replacements
    self.read = collections.Counter()            # source -> documents read
    self.seconds = {}                            # stage -> wall-clock seconds

  def drop(self, doc: dict, reason: str) -> None:
    self.removed[reason] += 1
    self.removed_by_source[(doc["source"], reason.split(":")[0])] += 1

  def keep(self, doc: dict) -> None:
    self.kept_by_source[doc["source"]] += 1
    self.kept_by_language[doc["meta"].get("language", "und")] += 1
    self.tokens_by_source[doc["source"]] += estimate_tokens(doc["text"])

  def as_dict(self) -> dict:
    return {"read": dict(self.read), "removed": dict(self.removed),
            "removed_by_source_and_stage": {f"{s}/{st}": n for (s, st), n in
                                            sorted(self.removed_by_source.items())},
            "kept_by_source": dict(self.kept_by_source),
            "kept_by_language": dict(self.kept_by_language.most_common()),
            "estimated_tokens_by_source": dict(self.tokens_by_source),
            "events": dict(self.events),
            "seconds_by_stage": {k: round(v, 3) for k, v in self.seconds.items()}}


def write_report(stats: dict, out_dir: str) -> None:
  """stats.json and a readable report.md, each written atomically."""
  write_json_atomic(os.path.join(out_dir, "stats.json"), stats, indent=2, ensure_ascii=False)
  lines = ["# Curation report", "", "## Documents read per source", ""]
  lines += [f"- {s}: {n}" for s, n in sorted(stats["read"].items())]
  lines += ["", "## Removed, by reason", "", "| reason | documents |", "|---|---|"]
  lines += [f"| {r} | {n} |" for r, n in sorted(stats["removed"].items(), key=lambda x: -x[1])]
  lines += ["", "## Removed, by source and stage", "", "| source/stage | documents |", "|---|---|"]
  lines += [f"| {k} | {n} |" for k, n in stats["removed_by_source_and_stage"].items()]
  lines += ["", "## Kept", "", "| source | documents | estimated tokens | in mixture |",
            "|---|---|---|---|"]
  mixture = stats.get("mixture", {}).get("documents_by_source", {})
  lines += [f"| {s} | {n} | {stats['estimated_tokens_by_source'].get(s, 0)} | "
            f"{mixture.get(s, '')} |" for s, n in sorted(stats["kept_by_source"].items())]
  lines += ["", "## Languages kept", ""]
  lines += [f"- {lang}: {n}" for lang, n in stats["kept_by_language"].items()]
  if stats["events"]:
    lines += ["", "## Replacements", ""] + [f"- {k}: {n}" for k, n in sorted(stats["events"].items())]
  if stats.get("seconds_by_stage"):
    lines += ["", "## Seconds by stage", ""]
    lines += [f"- {k}: {v:.1f}" for k, v in stats["seconds_by_stage"].items()]
  write_text_atomic(os.path.join(out_dir, "report.md"), "\n".join(lines) + "\n")
