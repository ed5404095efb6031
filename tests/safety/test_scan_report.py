"""The scan report: JSON counts against counts done by hand, a PNG replaced whole, no leftovers."""

import json
import os

import numpy as np
import pytest

from llm.safety.scan_report import write_scan_report


def scores_and_planted():
  rng = np.random.default_rng(0)
  planted = np.arange(60) >= 55
  spectral = np.where(planted, 9.0, rng.normal(0.0, 1.0, 60))
  clustering = np.where(planted, rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 60))
  return {"spectral": spectral, "clustering": clustering}, planted


def test_report_counts_flagged_rows_and_precision_recall(tmp_path):
  scores, planted = scores_and_planted()
  thresholds = {"spectral": 3.0, "clustering": 1.5}
  report = write_scan_report(str(tmp_path / "scan.json"), str(tmp_path / "scan.png"), scores,
                             thresholds, {"layer": 4, "mean": np.float32(0.5)}, planted=planted)
  on_disk = json.loads((tmp_path / "scan.json").read_text())
  assert on_disk == json.loads(json.dumps(report, default=float))
  assert on_disk["layer"] == 4 and on_disk["mean"] == 0.5 and on_disk["planted"] == 5
  for method, values in scores.items():
    summary = on_disk["methods"][method]
    hits = [v > thresholds[method] for v in values]
    true_positives = sum(h and p for h, p in zip(hits, planted))
    assert summary["flagged"] == sum(hits)
    assert summary["true_positives"] == true_positives
    assert summary["precision"] == pytest.approx(true_positives / sum(hits))
    assert summary["recall"] == pytest.approx(true_positives / 5)
    pairs = [(a > b) + 0.5 * (a == b) for a in values[planted] for b in values[~planted]]
    assert summary["auroc"] == pytest.approx(np.mean(pairs))
  assert on_disk["methods"]["spectral"]["precision"] == 1.0
  assert (tmp_path / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert sorted(os.listdir(tmp_path)) == ["scan.json", "scan.png"]


def test_report_without_planted_rows_and_its_guards(tmp_path):
  scores, _ = scores_and_planted()
  json_path, png_path = str(tmp_path / "a" / "scan.json"), str(tmp_path / "a" / "scan.png")
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "scan.png").write_bytes(b"old")
  report = write_scan_report(json_path, png_path, {"spectral": scores["spectral"]},
                             {"spectral": 100.0}, {})
  assert report["methods"]["spectral"]["flagged"] == 0 and "planted" not in report
  assert "precision" not in report["methods"]["spectral"]
  assert open(png_path, "rb").read()[:4] == b"\x89PNG"
  with pytest.raises(ValueError):
    write_scan_report(json_path, png_path, scores, {"spectral": 1.0}, {})
  with pytest.raises(ValueError):
    write_scan_report(json_path, png_path, scores, {"spectral": 1.0, "clustering": 1.0},
                      {"methods": 1})
  assert sorted(os.listdir(tmp_path / "a")) == ["scan.json", "scan.png"]
