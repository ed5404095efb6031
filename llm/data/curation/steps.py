"""The per-document stage chain: normalise -> blocklist -> language ID -> quality rules for the
document's kind -> PII scrubbing. Pure and picklable, so executors can run it anywhere.
"""

import dataclasses
import types

from llm.data.curation.blocklist import blocklist_reason
from llm.data.curation.filters import c4, code, fineweb, gopher
from llm.data.curation.langid import language_filter
from llm.data.curation.normalize import normalize_document


# Each rule: (text, lang) -> (possibly cleaned text, drop reason or None).
RULES = {
    "gopher_quality": lambda t, lang: (t, gopher.gopher_quality(t, lang)),
    "gopher_repetition": lambda t, lang: (t, gopher.gopher_repetition(t, lang)),
    "c4": c4.c4_filter,
    "fineweb": lambda t, lang: (t, fineweb.fineweb_filter(t, lang)),
    "code": lambda t, lang: (t, code.code_filter(t)),
}


def check_rules(config) -> None:
  """Fails before any work when config.rules names a rule that does not exist."""
  for kind, names in config.rules.items():
    for name in names:
      if name not in RULES:
        raise ValueError(f"config.rules.{kind}: unknown quality rule {name!r}; choose from "
                         f"{sorted(RULES)}")


@dataclasses.dataclass(frozen=True)
class StageSettings:
  """The parts of the curation config the per-document stages read, as plain values (a
  ConfigDict lookup costs microseconds, which adds up over millions of documents)."""
  kinds: dict
  rules: dict
  min_language_score: float
  keep_languages: tuple
  blocklist: types.SimpleNamespace
  pii: bool

  @classmethod
  def from_config(cls, config) -> "StageSettings":
    blocklist = {k: tuple(v) for k, v in config.blocklist.to_dict().items()}
    return cls(kinds=config.kinds.to_dict(),  # .to_dict(): .get() on a ConfigDict splits dots
               rules={k: tuple(v) for k, v in config.rules.to_dict().items()},
               min_language_score=config.langid.min_score,
               keep_languages=tuple(config.langid.keep),
               blocklist=types.SimpleNamespace(**blocklist), pii=bool(config.pii))


def process_document(doc: dict, config) -> tuple[dict, str | None, dict]:
  """Returns (document, drop reason or None, event counts such as {"pii:EMAIL": 2}).

  `config` is the curation config or, faster, its `StageSettings`."""
  settings = config if isinstance(config, StageSettings) else StageSettings.from_config(config)
  doc = dict(doc, meta=dict(doc.get("meta") or {}))
  try:
    doc, reason = normalize_document(doc)
    if reason:
      return doc, reason, {}
    reason = blocklist_reason(doc, settings.blocklist)
    if reason:
      return doc, reason, {}
    kind = settings.kinds.get(doc["source"], "web")
    if kind != "code":
      reason = language_filter(doc, settings.min_language_score, settings.keep_languages)
      if reason:
        return doc, reason, {}
    lang = doc["meta"].get("language", "und")
    for name in settings.rules.get(kind, ()):
      text, reason = RULES[name](doc["text"], lang)
      if reason:
        return doc, reason, {}
      doc["text"] = text
    events = {}
    if settings.pii:
      from llm.data.curation.pii import scrub_document
      doc = scrub_document(doc)
      events = {f"pii:{k}": v for k, v in doc["meta"].get("pii", {}).items()}
    return doc, None, events
  except Exception as error:  # a stage bug must not lose the run: count it and go on
    return doc, f"error:{type(error).__name__}", {}
