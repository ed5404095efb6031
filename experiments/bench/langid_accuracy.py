"""Language-ID accuracy per language on sentences from the packaged multilingual dialogs.

  python experiments/bench/langid_accuracy.py --json OUT.json [--min_chars 20]

Every dialog turn of at least `min_chars` characters is one labelled sentence; nothing here was
used to build the identifier, so all of them are held out.
"""

import argparse
import collections
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from llm.data.curation.langid import identify_language  # noqa: E402
from llm.data.curation.packaged import chatterbot_documents  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402


def labelled_sentences(min_chars: int):
  """(language, sentence) pairs from every dialog turn with at least `min_chars` characters."""
  for doc in chatterbot_documents(max_chars=1 << 40):
    for turn in doc["text"].split("\n"):
      if len(turn.strip()) >= min_chars:
        yield doc["meta"]["language"], turn.strip()


def accuracy_by_language(min_chars: int) -> dict:
  hits, totals = collections.Counter(), collections.Counter()
  for lang, sentence in labelled_sentences(min_chars):
    totals[lang] += 1
    hits[lang] += identify_language(sentence)[0] == lang
  return {lang: {"sentences": totals[lang], "accuracy": hits[lang] / totals[lang]}
          for lang in sorted(totals)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--min_chars", type=int, default=20)
  args = parser.parse_args()
  result = {"min_chars": args.min_chars, "per_language": accuracy_by_language(args.min_chars)}
  write_json_atomic(args.json, result, indent=2)
  for lang, r in result["per_language"].items():
    print(f"{lang}  {r['sentences']:5d}  {r['accuracy']:.3f}")


if __name__ == "__main__":
  main()
