"""Fill-in-the-middle: every sample rearranges back to its document; rates match the config."""

import numpy as np

from llm.data.curation.sources import load_documents
from llm.tokenizer.base import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from llm.tokenizer.fim import fim_document, restore_document


def test_layouts_follow_starcoder(small_tokenizer):
  tok = small_tokenizer
  pre, mid, suf = (tok.special_id(t) for t in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX))
  text = "def add(a, b):\n    return a + b\n"
  for seed in range(40):
    ids, mode = fim_document(text, tok, np.random.default_rng(seed), rate=1.0, spm_rate=0.5)
    assert ids.count(pre) == ids.count(mid) == ids.count(suf) == 1
    if mode == "psm":
      assert ids[0] == pre and ids.index(suf) < ids.index(mid)
    else:
      assert mode == "spm" and ids[:2] == [pre, suf]
    assert restore_document(ids, tok) == text


def test_ten_thousand_documents_restore_and_match_the_rates(small_tokenizer):
  tok = small_tokenizer
  docs = [d["text"] for source in ("chatterbot", "chinese_reviews", "python_stdlib")
          for d in load_documents(source, 1_500_000)][:10_000]
  assert len(docs) == 10_000
  rng = np.random.default_rng(0)
  modes = []
  for text in docs:
    ids, mode = fim_document(text, tok, rng, rate=0.5, spm_rate=0.3)
    assert restore_document(ids, tok) == text
    modes.append(mode)
  fim = [m for m in modes if m != "none"]
  fim_rate, spm_share = len(fim) / len(modes), fim.count("spm") / len(fim)
  print(f"\nFIM rate {fim_rate:.3f} (0.5), SPM share {spm_share:.3f} (0.3)")
  assert abs(fim_rate - 0.5) <= 0.02 and abs(spm_share - 0.3) <= 0.02
