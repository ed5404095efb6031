"""The learning-rate schedule matches its formula (acceptance h)."""

import math

import pytest

from llm.train.schedule import warmup_cosine


@pytest.mark.parametrize("step", [0, 1, 5, 9, 10, 11, 37, 55, 99, 100])
def test_warmup_cosine_matches_formula(step):
  peak, warmup, total, ratio = 3e-4, 10, 100, 0.1
  floor = peak * ratio
  if step < warmup:
    expected = peak * step / warmup
  else:
    progress = (step - warmup) / (total - warmup)
    expected = floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
  assert float(warmup_cosine(peak, warmup, total, ratio)(step)) == pytest.approx(expected,
                                                                                   rel=1e-5)


def test_schedule_stays_at_floor_after_the_run():
  assert float(warmup_cosine(1.0, 2, 10, 0.25)(50)) == pytest.approx(0.25)
