"""Per-request sampling settings, checked on arrival (the server turns a ValueError into 400)."""

import dataclasses

MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20
MAX_STOP_IDS = 8


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """What one request asks for; the defaults follow OpenAI's API.

  temperature 0 is greedy. top_k 0 and top_p 1 keep every token. `logprobs` None returns none;
  an integer k returns the chosen token's log-probability and the k most likely (0..20).
  Stop strings end the output and are not part of it; stop token ids end it too (also not
  part of it). `seed` makes the output independent of which other requests share the batch.
  """
  max_tokens: int = 16
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  min_tokens: int = 0
  stop: tuple[str, ...] = ()
  stop_token_ids: tuple[int, ...] = ()
  seed: int | None = None
  n: int = 1
  logprobs: int | None = None
  ignore_eos: bool = False

  def __post_init__(self):
    for message in _problems(self):
      raise ValueError(message)


def _problems(p: SamplingParams):
  if not isinstance(p.max_tokens, int) or p.max_tokens < 1:
    yield f"max_tokens must be an integer >= 1, got {p.max_tokens!r}"
  if p.temperature < 0:
    yield f"temperature must be >= 0, got {p.temperature}"
  if not 0 < p.top_p <= 1:
    yield f"top_p must be in (0, 1], got {p.top_p}"
  if p.top_k < 0:
    yield f"top_k must be >= 0 (0 keeps every token), got {p.top_k}"
  if p.min_tokens < 0 or p.min_tokens > p.max_tokens:
    yield f"min_tokens must be in [0, max_tokens={p.max_tokens}], got {p.min_tokens}"
  if len(p.stop) > MAX_STOP_STRINGS:
    yield f"at most {MAX_STOP_STRINGS} stop strings, got {len(p.stop)}"
  if any(not isinstance(s, str) or not s for s in p.stop):
    yield "stop strings must be non-empty strings"
  if len(p.stop_token_ids) > MAX_STOP_IDS:
    yield f"at most {MAX_STOP_IDS} stop token ids, got {len(p.stop_token_ids)}"
  if not 1 <= p.n <= 16:
    yield f"n must be in [1, 16], got {p.n}"
  if p.logprobs is not None and not 0 <= p.logprobs <= MAX_TOP_LOGPROBS:
    yield f"logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {p.logprobs}"
