"""Trains the micro model for 3 steps on 8 CPU devices in each layout and on 1 device, and
prints the largest loss and parameter differences as JSON (run by test_layouts.py in its own
process, since the device count is fixed when JAX starts).

  python tests/parallel/layouts_check.py LAYOUT [LAYOUT ...]   (e.g. data=2,fsdp=2,tensor=2,
      or SAVE>RESTORE such as data=2,fsdp=2,tensor=2>fsdp=8 to resume on another layout)
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import json  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402
from tests.conftest import micro_config, random_rows  # noqa: E402


def rows():
  return random_rows()


MODEL_KEYS = {"layers": "num_layers", "schedule": "pipeline_schedule",
              "microbatches": "pipeline_microbatches", "attention": "attention_impl",
              "experts": "moe.num_experts", "moe": "moe.mode"}
TEXT_KEYS = ("schedule", "attention", "moe")  # the rest are sizes


def model_config(layout: dict):
  """The micro config with the layout's model keys (layers=, schedule=, microbatches=)."""
  overrides = {"num_kv_heads": 4, "compute_dtype": "float32", "pipeline_microbatches": 2}
  overrides.update({MODEL_KEYS[k]: v for k, v in layout.items()
                    if k in MODEL_KEYS and "." not in MODEL_KEYS[k]})
  config = micro_config(**overrides)
  moe = config.model.moe
  moe.num_experts = layout.get("experts", 0)
  moe.mode = layout.get("moe", "dropless")
  if moe.mode == "capacity":  # room for every assignment: equal to dropless on one device
    moe.capacity_factor = float(moe.num_experts)
  config.parallel.data = 1
  for axis, size in layout.items():
    if axis not in MODEL_KEYS:
      config.parallel[axis] = size
  return config


def run(layout: dict, workdir: str, stop_after: int | None = None):
  config = model_config(layout)
  config.train.steps, config.train.batch_size = 3, 8
  config.checkpoint.every_steps, config.checkpoint.every_minutes = 1000, 1e6
  result = train(config, LMTask(config, rows()), workdir, stop_after=stop_after)
  losses = [h["loss"] for h in result["history"]]
  state = result["state"]
  specs = {"mlp.up": state["params"]["layers"]["mlp"]["up"].sharding.spec,
           "attn.q_proj": state["params"]["layers"]["attn"]["q_proj"].sharding.spec,
           "embed": state["params"]["embed"].sharding.spec,
           "adam_mu.mlp.up": state["opt_state"][1][0].mu["layers"]["mlp"]["up"].sharding.spec}
  per_device = sum(leaf.addressable_shards[0].data.nbytes
                   for leaf in jax.tree.leaves((state["params"], state["opt_state"])))
  specs["state_bytes_per_device"] = per_device
  params = jax.tree.map(np.asarray, jax.device_get(state["params"]))
  return losses, params, {k: [list(a) if isinstance(a, tuple) else a for a in v]
                          if k != "state_bytes_per_device" else v for k, v in specs.items()}


def pipelined(layout: dict) -> bool:
  """True when the model's forward on this layout runs the pipeline (its ppermute ring)."""
  from flax import nnx
  from llm.model import build_model
  from llm.parallel import make_mesh
  config = model_config(layout)
  graphdef, state = nnx.split(build_model(config.model, 0))
  forward = jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))
  with jax.set_mesh(make_mesh(config.parallel)):
    text = forward.lower(state, np.zeros((8, 16), np.int32)).as_text()
  return "collective_permute" in text


def parse(spec: str) -> dict:
  return {k: (v if k in TEXT_KEYS else int(v))
          for k, v in (item.split("=") for item in spec.split(","))}


def resharded_resume(save_spec: str, restore_spec: str, work: str, reference: list) -> dict:
  """Saves at step 2 on one layout, resumes on another: the step-3 loss must not change."""
  folder = os.path.join(work, f"resume-{save_spec}-{restore_spec}")
  run(parse(save_spec), folder, stop_after=2)
  losses, _, specs = run(parse(restore_spec), folder)
  return {"step3_loss": losses[-1], "reference_step3_loss": reference[2],
          "loss_diff": abs(losses[-1] - reference[2]), "restored_specs": specs}


def main(specs):
  with tempfile.TemporaryDirectory() as work:
    ref_losses, ref_params, ref_specs = run({"data": 1, "num_devices": 1},
                                            os.path.join(work, "ref"))
    out = {"one_device": {"state_bytes_per_device": ref_specs["state_bytes_per_device"]}}
    references = {}  # one-device runs of other models, shared by the layouts that need them
    for i, spec in enumerate(specs):
      if ">" in spec:  # "SAVE_LAYOUT>RESTORE_LAYOUT"
        out[spec] = resharded_resume(*spec.split(">"), work, ref_losses)
        continue
      layout = parse(spec)
      want_losses, want_params = ref_losses, ref_params
      model_keys = {k: v for k, v in layout.items() if k in MODEL_KEYS and k not in TEXT_KEYS}
      if model_keys:  # another model: its own one-device reference
        key = tuple(sorted(model_keys.items()))
        if key not in references:
          references[key] = run(dict(model_keys, num_devices=1), os.path.join(work, f"ref{i}"))
        want_losses, want_params, _ = references[key]
      losses, params, shardings = run(layout, os.path.join(work, str(i)))
      diffs = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), params, want_params)
      out[spec] = {"losses": losses, "reference_losses": want_losses,
                   "max_loss_diff": float(np.abs(np.subtract(losses, want_losses)).max()),
                   "max_param_diff": max(jax.tree.leaves(diffs)),
                   "devices": len(jax.devices()), "specs": shardings,
                   "pipelined": pipelined(parse(spec))}
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1:])
