"""The main job end to end on the embedded real text, and the training entry point."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def _run(args, cwd=ROOT):
  result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=str(cwd), timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_lifecycle_trains_evaluates_and_samples(tmp_path):
  result = _run(["llm.lifecycle", f"--workdir={tmp_path}", "--quick",
                 "--config.train.progress=false"])
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["data"]["heldout_rows"] > 0 and report["data"]["tokenizer_vocab"] == 2048
  assert report["pretrain"]["final_loss"] < report["pretrain"]["first_loss"] - 1.0
  heldout = report["heldout"]
  assert heldout["perplexity"] < heldout["unigram_perplexity"]
  assert 0.0 < heldout["bits_per_byte_shakespeare"] < 8.0
  assert len(report["samples"]) == 2 and all(s["completion"] for s in report["samples"])
  assert "held-out perplexity" in result.stdout
  assert (tmp_path / "pretrain" / "checkpoints" / "150").is_dir()
  curated = report["curation"]["kept_by_source"]
  assert {"shakespeare", "chatterbot", "peoples_daily", "python_stdlib"} <= set(curated)
  assert "dedup:exact" in (tmp_path / "curated" / "report.md").read_text()
  assert set(report["stage_seconds"]) == {"curation", "data", "pretrain", "heldout",
                                          "sampling", "alignment", "quantization",
                                          "serving", "safety"}
  safety = report["safety"]  # a guard on the pretrained model, the chat through it, a scan
  assert safety["guard"]["steps"] == 10 and safety["guard"]["examples"]["test"] > 500
  assert 0.0 <= safety["guard"]["baseline"]["response"]["auroc"] <= 1.0
  chats = safety["guarded_chat"]
  assert len(chats) == 6 and all(c["reply"] for c in chats)
  assert all(c["refused"] == "prompt" or c["samples"] == 4 for c in chats)
  scan = safety["backdoor_scan"]
  assert scan["conversations"] == aligned_conversations(tmp_path)
  assert 0 <= scan["flagged_by_any"] < scan["conversations"] / 5
  assert (tmp_path / "safety" / "scan" / "backdoor_scan.png").read_bytes()[:4] == b"\x89PNG"
  quantized = report["quantization"]  # GPTQ 4-bit g128 of the last aligned policy, served
  assert quantized["weights"] == 2 * 7 and quantized["weights_below_rtn_error"] == 14
  assert abs(quantized["perplexity_after"] / quantized["perplexity_before"] - 1) < 0.1
  assert quantized["memory_bytes"]["linear_held"] < quantized["memory_bytes"]["linear_float32"] / 5
  served = report["serving"]["aligned"]  # the engine, with 4 chat requests at once
  assert served["requests"] == 4 and served["generated_tokens"] > 0
  assert served["kv_blocks_used_after"] == 0 and "smollm2_instruct" not in report["serving"]
  assert all("<|im_" not in r["reply"] for r in served["replies"])
  # Run reports of the pretraining run and of the alignment runs overlaid (llm.report).
  assert report["run_reports"] == {"pretrain": "reports/pretrain/report.md",
                                   "alignment": "reports/alignment/report.md"}
  page = (tmp_path / "reports" / "alignment" / "report.md").read_text()
  assert all(f"| {name} | done |" in page for name in ("chat_sft", "reward_model", "dpo", "ppo"))
  assert (tmp_path / "reports" / "pretrain" / "curves.png").stat().st_size > 10_000
  aligned = report["alignment"]  # chat SFT -> reward model -> DPO on the same loop
  assert (aligned["chat_sft"]["heldout_assistant_loss_after"]
          < aligned["chat_sft"]["heldout_assistant_loss_before"])
  reward_model = aligned["reward_model"]
  # 15 steps fit the training pairs; on 27 held-out pairs accuracy has a standard error of
  # ~0.1, so here it must only not fall below chance by more than that noise (the full run:
  # 0.73 on 256 pairs, experiments/results/lifecycle_cpu.json).
  noise = 2 * (0.25 / reward_model["pairs"]["heldout"]) ** 0.5
  assert reward_model["heldout"]["accuracy"] > 0.5 - noise
  assert reward_model["train"]["accuracy"] > 0.6
  dpo = aligned["dpo"]
  assert dpo["heldout_before"]["rewards/accuracy"] == 0.0  # policy == reference
  assert dpo["heldout_after"]["rewards/margin"] > 0.0
  assert dpo["heldout_after"]["rewards/accuracy"] > 0.5
  ppo = aligned["ppo"]  # -> PPO against the reward model
  assert ppo["rollouts"] == 2 and ppo["heldout_before"]["kl"] == 0.0
  # 8 PPO steps move the held-out reward by about its standard error, either way; the full run
  # shows the rise (experiments/results/lifecycle_cpu.json). Here: no drop beyond the noise.
  before, after = ppo["heldout_before"], ppo["heldout_after"]
  noise = 2 * (before["score_std_error"] + after["score_std_error"])
  assert after["score"] > before["score"] - noise
  assert 0.0 < ppo["heldout_after"]["kl"] < ppo["max_kl"]
  assert (tmp_path / "align" / "ppo" / "ppo_curves.png").read_bytes()[:4] == b"\x89PNG"
  for name in ("chat_sft", "dpo", "ppo"):  # replies end at <|im_end|>, not in control text
    reply = aligned["chat"][f"reply_after_{name}"]
    assert reply.strip() and "<|im_" not in reply, (name, reply)
  # An objective alone, from the chat SFT run's workdir (a DPO sweep, say), writes its report.
  dpo_dir = tmp_path / "dpo_alone"
  _run(["llm.main", "--config=experiments/configs/dpo_tiny.py", f"--workdir={dpo_dir}",
        "--config.train.steps=4", "--config.optim.warmup_steps=1",
        "--config.train.progress=false", "--config.align.dpo_beta=0.3",
        "--config.align.conversations=300", f"--config.align.init_from={tmp_path}/align/chat_sft",
        f"--config.data.tokenizer_path={tmp_path}/data/tokenizer.model"])
  alone = json.loads((dpo_dir / "report.json").read_text())
  assert alone["beta"] == 0.3 and alone["heldout_before"] == aligned["dpo"]["heldout_before"]
  # Run again on the finished workdir: it resumes at the final checkpoint, trains nothing and
  # reports the same training and evaluation.
  _run(["llm.lifecycle", f"--workdir={tmp_path}", "--quick", "--config.train.progress=false",
        "--align_steps=0,0,0,0"])
  again = json.loads((tmp_path / "report.json").read_text())
  assert again["pretrain"] == report["pretrain"]
  assert again["heldout"]["perplexity"] == report["heldout"]["perplexity"]
  assert "alignment" not in again and set(again["stage_seconds"]) == {
      "curation", "data", "pretrain", "heldout", "sampling"}


def aligned_conversations(workdir) -> int:
  """Chat SFT's training conversations in a quick lifecycle run."""
  report = json.loads((workdir / "report.json").read_text())
  return report["alignment"]["conversations"]["train"]


def test_main_runs_sft_from_a_jsonl_file(tmp_path):
  pairs = tmp_path / "pairs.jsonl"
  with open(pairs, "w", encoding="utf-8") as f:
    for i in range(40):
      f.write(json.dumps({"prompt": f"What is {i} plus one? ", "response": f"{i + 1}."}) + "\n")
  workdir = tmp_path / "run"
  _run(["llm.main", "--config=experiments/configs/tiny.py", "--config.train.task=sft",
        f"--config.data.sft_path={pairs}", "--config.data.tokenizer_vocab_size=300",
        "--config.train.steps=20", "--config.optim.warmup_steps=2", "--config.train.progress=false",
        f"--workdir={workdir}"])
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(records) == 20 and records[-1]["loss"] < records[0]["loss"]
  assert json.loads((workdir / "config.json").read_text())["train"]["task"] == "sft"
