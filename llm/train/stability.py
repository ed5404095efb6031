"""Watching the loss for spikes and non-finite values, and what the loop does about them.

The monitor keeps the losses of the last `window` good steps. A step is an incident when its
loss or gradient norm is not finite (in float16 an overflowing gradient is not: the loss
scaler skips that step itself), or, once `min_history` steps are in the window, when its loss
exceeds mean + spike_std * std of the window, or its perplexity exceeds spike_ratio times the
window's. Incidents are appended to `events.jsonl` in the workdir; the loop then rolls back,
stops or goes on (`stability.action`).
"""

import collections
import dataclasses
import json
import math
import os
import time

import jax


@dataclasses.dataclass
class Incident:
  step: int
  kind: str  # "nonfinite" or "spike"
  loss: float
  detail: str


class LossMonitor:

  def __init__(self, stability_config, float16: bool):
    self.config = stability_config
    self.float16 = float16
    self.window = collections.deque(maxlen=stability_config.window)  # (step, loss)

  def check(self, step: int, metrics: dict) -> Incident | None:
    """The incident this step's metrics show, or None (then the loss joins the window)."""
    loss, grad_norm = metrics["loss"], metrics.get("grad_norm", 0.0)
    if not math.isfinite(loss) or (not math.isfinite(grad_norm) and not self.float16):
      return Incident(step, "nonfinite", loss, f"loss {loss}, gradient norm {grad_norm}")
    stability = self.config
    if len(self.window) >= stability.min_history:
      losses = [l for _, l in self.window]
      mean = sum(losses) / len(losses)
      std = math.sqrt(sum((l - mean) ** 2 for l in losses) / len(losses))
      if stability.spike_std and loss > mean + stability.spike_std * std:
        return Incident(step, "spike", loss, f"loss {loss:.4f} > mean {mean:.4f} + "
                        f"{stability.spike_std} x std {std:.4f} of the last {len(losses)} steps")
      if stability.spike_ratio and math.exp(min(loss - mean, 80.0)) > stability.spike_ratio:
        return Incident(step, "spike", loss, f"perplexity x{math.exp(loss - mean):.2f} of the "
                        f"window's (limit x{stability.spike_ratio})")
    self.window.append((step, loss))
    return None

  def forget_after(self, step: int) -> None:
    """Drops the losses of steps after `step` (rolled back)."""
    kept = [(s, l) for s, l in self.window if s <= step]
    self.window.clear()
    self.window.extend(kept)

  def get_state(self) -> list:
    return [list(item) for item in self.window]

  def set_state(self, state: list) -> None:
    self.window.clear()
    self.window.extend((int(s), float(l)) for s, l in state)


def log_event(workdir: str, event: dict) -> None:
  """Appends one event (with the wall time) to workdir/events.jsonl (process 0)."""
  if jax.process_index() != 0:
    return
  with open(os.path.join(workdir, "events.jsonl"), "a", encoding="utf-8") as f:
    f.write(json.dumps(dict(event, time=time.time())) + "\n")
