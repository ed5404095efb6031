"""Every training objective by its one name: the name is `train.task`, the folder of its run in
the lifecycle, and its key in reports. `llm.main`, the lifecycle and config validation read
this table and nothing else.

Adding an objective is one file (its Task, builder, and optionally a runner and a config
check) plus one line here; see README "Add your own objective".
"""

from llm.align.chat_sft import build_chat_sft_task, run_chat_sft
from llm.align.dpo import build_dpo_task, check_dpo_config, run_dpo
from llm.align.earlier_runs import inputs_from_earlier_runs
from llm.align.objective import Objective, StageInputs
from llm.align.reward_model import build_reward_model_task, run_reward_model
from llm.align.rl import build_rl_task, check_rl_config, run_rl
from llm.align.sft import build_sft_task, check_sft_config, sft_inputs
from llm.config import fail, validate
from llm.data.prepare import prepare_lm_data
from llm.model.config_checks import check_model_config
from llm.train.lm_task import LMTask


def pretraining_inputs(config, workdir: str) -> StageInputs:
  tokenizer, train_rows, heldout_rows = prepare_lm_data(config.data, workdir)
  return StageInputs(tokenizer=tokenizer, rows=train_rows, eval_rows=heldout_rows)


def from_earlier_runs(*needs: str):
  return lambda config, workdir: inputs_from_earlier_runs(config, needs)


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
  """Adds an objective (a name may be registered once)."""
  if objective.name in OBJECTIVES:
    raise ValueError(f"an objective named {objective.name!r} is registered already")
  OBJECTIVES[objective.name] = objective
  return objective


for _objective in (
    Objective("lm", lambda c, i: LMTask(c, i.rows, i.eval_rows, i.init_params), "tiny",
              pretraining_inputs),
    Objective("sft", build_sft_task, "tiny", sft_inputs, check=check_sft_config),
    Objective("chat_sft", build_chat_sft_task, "chat_sft_tiny", from_earlier_runs(),
              run=run_chat_sft),
    Objective("reward_model", build_reward_model_task, "reward_model_tiny",
              from_earlier_runs(), run=run_reward_model),
    Objective("dpo", build_dpo_task, "dpo_tiny", from_earlier_runs(), run=run_dpo,
              check=check_dpo_config),
    Objective("ppo", build_rl_task, "ppo_tiny", from_earlier_runs("reward_model"), run=run_rl,
              check=check_rl_config, needs=("reward_model",)),
):
  register(_objective)

# The lifecycle's alignment after pretraining, in order: the first starts from the pretrained
# model, the others from its result (reward_model before ppo, which needs it).
ALIGNMENT_SEQUENCE = ("chat_sft", "reward_model", "dpo", "ppo")


def get(name: str) -> Objective:
  if name not in OBJECTIVES:
    fail("train.task", f"unknown objective {name!r}", f"Choose one of {tuple(OBJECTIVES)}.")
  return OBJECTIVES[name]


def check_run_config(config) -> None:
  """Every check a run's config must pass: the shared fields, the model's choices, and the
  objective's own fields. Raises ConfigError naming the field."""
  validate(config)
  check_model_config(config)
  get(config.train.task).check(config)
