"""Learning-rate schedule: linear warmup from 0 to the peak, then cosine decay to a floor."""

import optax


def warmup_cosine(peak_lr: float, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float) -> optax.Schedule:
  """lr(s) = peak*s/warmup for s < warmup; then floor + (peak-floor)*(1+cos(pi*p))/2,
  p = (s-warmup)/(total-warmup), reaching the floor peak*min_lr_ratio at s = total."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=peak_lr * min_lr_ratio)
