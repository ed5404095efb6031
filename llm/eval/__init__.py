"""Evaluation: perplexity now; task suites later."""
