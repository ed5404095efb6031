"""The attention benchmark's timing path runs end to end (tiny shapes, CPU interpret mode)."""

from experiments.bench import attention as bench


def test_measure_fills_a_row_per_shape_and_mode():
  impls = {k: v for k, v in bench.implementations("cpu").items() if k in ("ours_pallas", "xla")}
  rows, saves = [], []
  bench.measure(impls, [32], [16], repeats=1, rows=rows, save=lambda: saves.append(1),
                tokens=64, width=32)
  assert [r["mode"] for r in rows] == ["forward", "forward_backward"] and len(saves) == 2
  for row in rows:
    assert (row["batch"], row["heads"]) == (2, 2)
    # causal: half of 4*b*h*t*t*d; the backward adds 2.5x
    assert row["flops"] == 4 * 2 * 2 * 32 * 32 * 16 / 2 * (3.5 if row["mode"] != "forward" else 1)
    for name in impls:
      assert row[name]["tflops"] > 0, row[name]
