"""The FIM study's statistics and verdict against hand-computed numbers (no training)."""

import math

import pytest

from experiments.papers import fim_report
from experiments.papers.fim import blocks, context_ids, middle_rows, snippets
from llm.tokenizer.fim import restore_document


def test_binomial_se():
  assert fim_report.binomial_se(0.1, 100) == pytest.approx(0.03)
  assert fim_report.binomial_se(0.0, 50) == 0.0


def test_paired_delta():
  # differences 1, 0, 1 over 5 tokens: delta 2/5; std (ddof 1) sqrt(1/3), se sqrt(3)*sqrt(1/3)/5
  delta, se = fim_report.paired_delta([2.0, 4.0, 6.0], [1.0, 4.0, 5.0], [1, 2, 2])
  assert delta == pytest.approx(0.4)
  assert se == pytest.approx(0.2)


def _runs(rel: float, em: float, em0: float = 0.0, n: int = 100, spm: float = 0.0) -> dict:
  base = {"loss": 2.0, "rel_change": 0.0, "rel_se": 0.0, "em": {"psm": em0, "spm": 0.0},
          "em_n": n}
  fim = {"loss": 2.0 * (1 + rel), "rel_change": rel, "rel_se": 0.001,
         "em": {"psm": em, "spm": spm}, "em_n": n}
  return {0.0: base, 0.5: dict(fim), 0.9: dict(fim)}


def test_verdict():
  judged = fim_report.verdict(_runs(0.01, 0.20))
  assert judged["label"] == "reproduced" and judged["infill_layouts"] == ["psm"]
  # 5% vs 2% on 100 cases: gap 0.03, se sqrt(.0475/100 + .0196/100) = 0.0259; not > 2 se
  judged = fim_report.verdict(_runs(0.01, 0.05, em0=0.02))
  assert judged["label"] == "partly reproduced" and not judged["infill_holds"]
  assert judged["em_gaps"]["psm"]["0.5"][1] == pytest.approx(math.sqrt(0.0671 / 100))
  # either layout may carry the infill claim: SPM 10% vs 0% is 0.1 / 0.03 = 3.3 se
  assert fim_report.verdict(_runs(0.01, 0.0, spm=0.10))["infill_layouts"] == ["spm"]
  assert fim_report.verdict(_runs(0.05, 0.20))["label"] == "partly reproduced"
  assert fim_report.verdict(_runs(0.05, 0.0))["label"] == "not reproduced"
  sentence = fim_report.verdict_sentence(_runs(0.05, 0.0), fim_report.verdict(_runs(0.05, 0.0)))
  assert "Not reproduced" in sentence and "+5.00%" in sentence and "0/100" in sentence
  assert "no exact infill matches" in sentence


def test_em_text():
  assert fim_report.em_text(0.1, 100) == "10.0% ± 3.0%"
  assert fim_report.em_text(0.0, 300) == "0/300 (95% upper bound 1.0%)"


def test_ratio_se():
  # per-row losses 1 and 3 over 1 token each: mean 2, residuals -1, 1, std sqrt(2), se 1
  assert fim_report.ratio_se([1.0, 3.0], [1, 1]) == pytest.approx(1.0)


def test_snippets_and_blocks():
  text = "\n".join(["a" * 9] * 5)  # five 10-character lines (with their newlines)
  assert snippets(text, max_chars=25) == ["a" * 9 + "\n" + "a" * 9] * 2 + ["a" * 9]
  assert "\n".join(snippets(text, max_chars=25)) == text
  assert blocks("\n".join("0123456"), lines=3) == ["0\n1\n2", "3\n4\n5"]


class _CharTokenizer:
  """Characters as ids 100+; FIM control tokens 5-7, BOS 2."""
  bos_id = 2
  _special = {"<fim_prefix>": 5, "<fim_middle>": 6, "<fim_suffix>": 7}

  def encode(self, text):
    return [100 + ord(c) for c in text]

  def decode(self, ids):
    return "".join(chr(i - 100) for i in ids if i >= 100)

  def special_id(self, token):
    return self._special[token]


def test_layouts_restore_the_window_and_score_only_the_middle():
  tok, case = _CharTokenizer(), {"prefix": "a = 1\n", "middle": "b = 2", "suffix": "\nc = 3"}
  for layout in ("psm", "spm"):
    ids = context_ids(tok, case, layout) + tok.encode(case["middle"])
    assert ids[0] == tok.bos_id and restore_document(ids[1:], tok) == "a = 1\nb = 2\nc = 3"
  assert context_ids(tok, case, "prefix_only") == [2] + tok.encode("a = 1\n")
  rows = middle_rows(tok, [case], 32, "spm")
  assert tok.decode(rows["targets"][0][rows["loss_mask"][0] > 0]) == "b = 2"
