"""Weight-only quantization: round-to-nearest and GPTQ onto integer grids, packed storage."""
