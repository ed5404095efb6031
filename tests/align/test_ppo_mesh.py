"""PPO and GRPO on 8 CPU devices (data=2 x fsdp=2 x tensor=2) place the policy, its Adam state,
the reference and the reward model by their logical axes and train like one device: the
losses of 3 steps within 1e-5 (f32)."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT = [None, "fsdp", "tensor"]  # layers/mlp/up is [layers, embed, mlp]


@pytest.fixture(scope="module")
def results():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  done = subprocess.run([sys.executable, os.path.join(HERE, "ppo_mesh_check.py")],
                        capture_output=True, text=True, env=env, timeout=900)
  lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
  assert lines, done.stdout[-2000:] + done.stderr[-4000:]
  return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_rl_on_a_mesh_trains_like_one_device(results, algo):
  r = results[algo]
  print(f"\n{algo}: losses {r['mesh']['losses']} vs {r['one_device']['losses']}, max diff "
        f"{r['max_loss_diff']:.2e}")
  assert r["mesh"]["devices"] == 8 and len(r["mesh"]["losses"]) == 3
  assert r["max_loss_diff"] <= 1e-5
  assert r["mesh"]["scores"] == pytest.approx(r["one_device"]["scores"], abs=1e-5)
  specs = r["mesh"]["specs"]
  assert specs["policy.mlp.up"] == SPLIT and specs["adam_mu.mlp.up"] == SPLIT
  assert specs["reference.mlp.up"] == SPLIT
  assert specs["reward.attn.q_proj"] == [None, "fsdp", "tensor", None]  # [layers, embed, heads, d]
  assert r["one_device"]["specs"]["policy.mlp.up"] == [None, None, None]
