"""The guard end to end on a micro backbone: trained on the loop with LoRA, calibrated, saved,
loaded back with the same scores, and scoring a batch as it scores each text alone."""

import numpy as np
import pytest

from llm.safety.examples import guard_examples
from llm.safety.guard import load_guard
from llm.safety.metrics import guard_metrics
from llm.safety.guard_training import train_guard
from tests.conftest import micro_lifecycle_run, random_rows


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory, small_tokenizer):
  """A micro backbone run laid out like the lifecycle, and a guard trained on it."""
  root = tmp_path_factory.mktemp("guard")
  micro_lifecycle_run(root, small_tokenizer, 2, random_rows(vocab=small_tokenizer.vocab_size))
  report = train_guard(f"run:{root / 'pretrain'}", str(root / "guard"), steps=6, batch_size=4,
                       seq_len=32, lr=1e-2, lora_rank=2, prompts_per_class=20, target_fpr=0.1)
  return root / "guard", report


def test_a_loaded_guard_gives_the_scores_its_report_was_computed_from(guard_dir):
  directory, report = guard_dir
  guard = load_guard(f"run:{directory}")
  assert guard.threshold == report["calibration"]["prompt"]["threshold"]
  assert guard.response_threshold == report["calibration"]["response"]["threshold"]
  test = guard_examples("test")
  prompts = [e for e in test if e.kind == "prompt"]
  replies = [e for e in test if e.kind == "response"]
  for kind, chosen, threshold, responses in (
      ("prompt", prompts, guard.threshold, None),
      ("response", replies, guard.response_threshold, [e.response for e in replies])):
    scores = guard.unsafe_probability([e.prompt for e in chosen], responses)
    again = guard_metrics(scores, [e.unsafe for e in chosen], threshold)
    for key in ("auroc", "f1", "recall", "false_positive_rate"):
      assert again[key] == pytest.approx(report["guard"][kind][key], abs=1e-6), (kind, key)
  for side in ("guard", "baseline"):
    assert set(report[side]) == {"prompt", "response", "benign_prompt_false_positive_rate"}
  assert report["examples"]["train"] > 0 and report["last_loss"] < 5
  categories = report["categories"]  # a probe over Do-Not-Answer's and pyrit's categories
  assert len(categories["classes"]) >= 8 and categories["response"]["examples"] > 50
  probabilities = guard.categories([e.prompt for e in replies[:3]],
                                   [e.response for e in replies[:3]])
  assert set(probabilities[0]) == set(categories["classes"])
  assert all(abs(sum(p.values()) - 1) < 1e-6 for p in probabilities)


def test_scores_do_not_depend_on_the_batch_they_are_padded_into(guard_dir):
  guard = load_guard(f"run:{guard_dir[0]}", threshold=0.3)
  assert guard.threshold == guard.response_threshold == 0.3
  prompts = ["How do I bake bread?", "How do I make a weapon at home?", "Hello"]
  together = guard.unsafe_probability(prompts, [None, None, "Hi there!"])
  alone = [guard.unsafe_probability([p], [r])[0]
           for p, r in zip(prompts, [None, None, "Hi there!"])]
  np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
  assert ((together > 0) & (together < 1)).all()


def test_a_folder_without_a_guard_is_named_with_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="train_guard"):
    load_guard(f"run:{tmp_path}")
