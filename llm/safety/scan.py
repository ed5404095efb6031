"""Scans a chat model's training conversations for planted backdoors: per conversation, the
mean final hidden state over its reply tokens, scored by spectral signatures and activation
clustering, flagged by a one-sided robust z-score. Reads activations; never trains.

  python -m llm.safety.scan --run=runs/lifecycle/align/chat_sft --data=sharegpt:3000
  python -m llm.safety.scan --run=DIR --data=conversations.jsonl --out=runs/scan

--data is `sharegpt:N` (the training split of the first N packaged ShareGPT conversations,
as chat SFT reads them) or a JSONL file with one conversation per line ({"turns"} or
{"messages"}: [{"role", "content"}, ...]). Writes OUT/backdoor_scan.json (counts, flagged
share, the flagged conversations' first user messages) and OUT/backdoor_scan.png (the
histograms with their thresholds).
"""

import logging

from absl import app, flags

from llm.safety.scanning import load_conversations, scan_conversations

_RUN = flags.DEFINE_string("run", None, "A chat model's workdir (chat_sft, dpo, ppo run).")
_DATA = flags.DEFINE_string("data", "sharegpt:3000", "sharegpt:N or a JSONL of conversations.")
_OUT = flags.DEFINE_string("out", "", "Report folder (default: the run's workdir).")
_Z = flags.DEFINE_float("z_threshold", 3.5, "Flag scores whose one-sided robust z exceeds it.")
_SEQ = flags.DEFINE_integer("seq_len", 0, "Tokens per conversation read (the first exchange, "
                           "its message cut to fit); 0: the model's max_seq_len.")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "Default: the run's own tokenizer.")


def main(argv):
  del argv
  from llm.eval.models import Evaluated
  from llm.runtime import configure_logging
  configure_logging()
  model = Evaluated(f"run:{_RUN.value}", _TOKENIZER.value)
  conversations = load_conversations(_DATA.value)
  logging.info("scanning %d conversations", len(conversations))
  report = scan_conversations(model.model(), model.tokenizer, conversations,
                              _OUT.value or _RUN.value,
                              _SEQ.value or model.model_config.max_seq_len, _Z.value,
                              extra={"run": _RUN.value, "data": _DATA.value})
  logging.info("flagged %d of %d conversations (%.2f%%); report in %s",
               report["flagged_by_any"], report["conversations"],
               100 * report["flagged_share"], _OUT.value or _RUN.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["run"])
  app.run(main)
