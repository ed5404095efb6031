"""Pallas (TPU/GPU) and Triton kernels, each beside a pure-jnp reference."""
