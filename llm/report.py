"""Run reports: a markdown page and PNG curves from one or more runs' workdirs, overlaid.

  python -m llm.report runs/tiny                          # writes runs/tiny/report/report.md
  python -m llm.report runs/sweep/000-* runs/sweep/001-* --out=runs/compare

Curves (loss and eval loss, learning rate, gradient norm, tokens/s, MFU, loss scale, MoE expert
load) come from metrics.jsonl, incidents from events.jsonl, the config from config.json.
"""

import logging

from absl import app, flags

from llm.research.run_report import write_report
from llm.runtime import configure_logging

_OUT = flags.DEFINE_string("out", "", "Folder for report.md and curves.png "
                           "(default: WORKDIR/report for one run; required for several).")
_TITLE = flags.DEFINE_string("title", "", "The page's title.")


def main(argv):
  configure_logging()
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError("give one or more run workdirs: python -m llm.report WORKDIR ...")
  if len(workdirs) > 1 and not _OUT.value:
    raise app.UsageError("several runs: say where the report goes with --out=DIR")
  try:
    path = write_report(workdirs, _OUT.value or f"{workdirs[0].rstrip('/')}/report", _TITLE.value)
  except FileNotFoundError as e:
    raise SystemExit(f"report: {e}") from None
  logging.info("wrote %s", path)


if __name__ == "__main__":
  app.run(main)
