"""The Triton attention kernel compiles (front end to a cubin for sm_90, no GPU needed) for
every constexpr variant, with the scale typed as jax_triton types a Python float (fp64) and
numpy's float32 (fp32). Running it needs a GPU (experiments/bench/attention.py)."""

import pytest

triton = pytest.importorskip("triton")


@pytest.mark.parametrize("scale_type", ["fp32", "fp64"])
@pytest.mark.parametrize("causal,segments", [(True, True), (True, False), (False, True)])
def test_the_attention_kernel_compiles_for_hopper(scale_type, causal, segments):
  from triton.backends.compiler import GPUTarget
  from triton.compiler import ASTSource

  from kernels.attention_reference import MASK_VALUE
  from kernels.triton_attention import _kernel
  kernel = _kernel()
  signature = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "q_seg_ptr": "*i32",
               "kv_seg_ptr": "*i32", "sm_scale": scale_type, "kv_len": "i32",
               "o_ptr": "*bf16", "lse_ptr": "*fp32"}
  constants = dict(HEADS=8, KV_HEADS=2, Q_LEN=256, KV_PAD=256, HEAD_DIM=64, BLOCK_M=128,
                   BLOCK_N=64, CAUSAL=causal, HAS_SEGMENTS=segments, MASK=MASK_VALUE)
  signature.update({name: "constexpr" for name in constants})
  source = ASTSource(fn=kernel, signature=signature, constexprs={
      (kernel.arg_names.index(name),): value for name, value in constants.items()})
  compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                            options={"num_warps": 4, "num_stages": 2})
  assert compiled.asm["cubin"] and "attention_forward" in compiled.asm["ptx"]
