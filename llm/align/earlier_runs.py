"""Inputs of an alignment objective run alone (`llm.main` with train.task chat_sft,
reward_model, dpo or ppo): the parameters an earlier run left in its workdir.

  python -m llm.main --config=experiments/configs/dpo_tiny.py --workdir=runs/dpo_beta0.3 \\
      --config.align.dpo_beta=0.3 --config.align.init_from=runs/lifecycle/align/chat_sft \\
      --config.data.tokenizer_path=runs/lifecycle/data/tokenizer.model

init_from is a pretraining or chat_sft workdir (its newest checkpoint); an objective that needs
another's parameters reads them from `align.<name>_from` (ppo: align.reward_model_from).
"""

from llm.align.conversations import split_conversations
from llm.align.objective import StageInputs
from llm.tokenizer import load_tokenizer
from llm.train.run_loading import load_trained_params, policy_params


def inputs_from_earlier_runs(config, needs: tuple[str, ...] = ()) -> StageInputs:
  """The tokenizer, the conversations, align.init_from's policy and each needed objective's
  parameters (from align.<name>_from)."""
  align, task = config.align, config.train.task
  if not align.init_from or not config.data.tokenizer_path:
    raise ValueError(f"train.task={task} starts from an earlier run: set "
                     "--config.align.init_from=WORKDIR and --config.data.tokenizer_path=FILE "
                     "(e.g. runs/lifecycle/align/chat_sft and runs/lifecycle/data/tokenizer.model)")
  trained = {}
  for name in needs:
    workdir = align.get(f"{name}_from", "")
    if not workdir:
      raise ValueError(f"train.task={task} needs a {name} run: set "
                       f"--config.align.{name}_from=WORKDIR")
    trained[name] = load_trained_params(workdir)
  return StageInputs(tokenizer=load_tokenizer(config.data.tokenizer_path),
                     conversations=split_conversations(align.conversations),
                     init_params=policy_params(load_trained_params(align.init_from)),
                     trained=trained)
