"""Heuristic text-quality filters: Gopher, C4, FineWeb and source-code rules.

Each filter takes the text and its language and returns a drop reason such as
"gopher_quality:word_count", or None to keep; `c4_filter` also returns the cleaned text.
"""

from llm.data.curation.filters.c4 import C4Config, c4_filter, c4_reasons
from llm.data.curation.filters.code import CodeConfig, code_filter, code_reasons
from llm.data.curation.filters.fineweb import FineWebConfig, fineweb_filter, fineweb_reasons
from llm.data.curation.filters.gopher import (GopherQualityConfig, GopherRepetitionConfig,
                                              gopher_quality, gopher_quality_reasons,
                                              gopher_repetition, gopher_repetition_reasons)

__all__ = [
    "C4Config", "CodeConfig", "FineWebConfig", "GopherQualityConfig", "GopherRepetitionConfig",
    "c4_filter", "c4_reasons", "code_filter", "code_reasons", "fineweb_filter",
    "fineweb_reasons", "gopher_quality", "gopher_quality_reasons", "gopher_repetition",
    "gopher_repetition_reasons",
]
