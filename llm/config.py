"""The typed config tree and its validation.

Every run is described by one `ml_collections.ConfigDict` built by `default_config()` and
overridden by an `experiments/configs/<name>.py`. `validate` runs before anything compiles and
names the offending field in its error.
"""

import importlib.util
import pathlib

import ml_collections

CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"


class ConfigError(ValueError):
  """A config field holds an invalid value; the message names the field and the fix."""


def default_config() -> ml_collections.ConfigDict:
  """All fields with their defaults; experiment configs override a subset."""
  config = ml_collections.ConfigDict()
  config.name = "default"
  config.seed = 0

  config.model = model = ml_collections.ConfigDict()
  model.vocab_size = 2048
  model.d_model = 256
  model.num_layers = 4
  model.num_heads = 4
  model.num_kv_heads = 2
  model.head_dim = 64
  model.mlp_dim = 688
  model.max_seq_len = 256
  model.norm_eps = 1e-5
  model.tie_embeddings = True
  model.qkv_bias = False           # biases on the q/k/v projections (Qwen2)
  model.compute_dtype = "auto"
  model.attention_impl = "xla"
  model.remat_policy = "none"
  model.scan_layers = True
  model.pipeline_microbatches = 4  # micro-batches, used when the mesh has stage > 1
  model.pipeline_schedule = "gpipe"  # or "1f1b": activations held per stage bounded by stages
  model.init_std = 0.02
  # Mixture of experts (llm/model/moe.py): num_experts 0 keeps dense MLPs.
  model.moe = moe = ml_collections.ConfigDict()
  moe.num_experts = 0
  moe.top_k = 2
  moe.every = 1                # MoE in every k-th layer (layers k-1, 2k-1, ...)
  moe.mode = "dropless"        # or "capacity": at most capacity_factor * N * k / E per expert
  moe.capacity_factor = 1.25
  moe.expert_mlp_dim = 0       # 0: model.mlp_dim
  moe.shared_experts = 0       # dense experts every token also passes through
  moe.new_experts = 0          # experts added for continual learning (own parameters)
  moe.router_jitter = 0.0      # multiplicative input noise U(1 - j, 1 + j) while training
  moe.load_balance_coef = 0.01
  moe.z_loss_coef = 0.001
  # Low-rank adapters (llm/model/lora.py); rank 0: none. Train them alone with
  # train.trainable="lora".
  model.lora = ml_collections.ConfigDict(
      {"rank": 0, "alpha": 16.0, "dropout": 0.0,
       "targets": "q_proj,k_proj,v_proj,o_proj,gate,up,down"})
  model.side_adapter_dim = 0     # >0: a trainable side SwiGLU per block (zero-initialised output)
  model.rope = rope = ml_collections.ConfigDict()
  rope.theta = 10000.0
  rope.scaling = "none"
  rope.factor = 1.0
  rope.original_max_seq_len = 256
  rope.low_freq_factor = 1.0   # llama3
  rope.high_freq_factor = 4.0  # llama3
  rope.beta_fast = 32.0        # yarn
  rope.beta_slow = 1.0         # yarn

  config.data = data = ml_collections.ConfigDict()
  data.source = "shakespeare"      # see llm/data/curation/sources.py
  data.max_chars = 2_000_000        # cap on raw text read, to bound tokenizer and packing time
  data.heldout_fraction = 0.02
  data.seq_len = 256
  data.tokenizer_vocab_size = 2048
  data.tokenizer_path = ""          # a sentencepiece model; empty trains one in the workdir
  data.tokenizer_type = "bpe"       # "bpe" or "unigram", when one is trained
  data.fim_rate = 0.0               # share of train documents rearranged for fill-in-the-middle
  data.fim_spm_rate = 0.5           # share of those in SPM rather than PSM order
  data.instruction_share = 0.0      # share of train characters from chat-templated conversations
  data.instruction_source = "sharegpt"
  data.pack_workers = 2             # processes that tokenize and pack
  data.curated_sources = ""         # with source="curated:DIR": comma-separated sources to use
  data.replay_source = ""           # general data mixed into training (continual pretraining)
  data.replay_share = 0.0           # its share of the train tokens (the seed suggests 0.05)
  data.sft_path = ""                # JSONL of {"prompt", "response"} records, for train.task="sft"

  # Device mesh sizes (llm/parallel); one may be -1: the rest of the devices.
  config.parallel = ml_collections.ConfigDict(
      {"data": -1, "fsdp": 1, "tensor": 1, "expert": 1, "stage": 1,
       "num_devices": 0})  # 0: every device; N: the first N (e.g. a 1-device reference)

  config.optim = optim = ml_collections.ConfigDict()
  optim.lr = 3e-3
  optim.min_lr_ratio = 0.1
  optim.warmup_steps = 20
  optim.weight_decay = 0.1
  optim.b1 = 0.9
  optim.b2 = 0.95
  optim.eps = 1e-8
  optim.clip_norm = 1.0

  config.train = train = ml_collections.ConfigDict()
  train.task = "lm"
  train.trainable = ""             # comma-separated parameter-path parts to train; "" trains all
  train.steps = 200
  train.batch_size = 16            # sequences per optimizer step (all micro-batches together)
  train.grad_accum = 1
  train.log_every = 10
  train.eval_every = 100
  train.eval_batches = 4
  train.progress = True
  train.peak_flops = 0.0           # FLOP/s for MFU; 0 measures this machine's matmul peak at start

  # Loss-spike and non-finite handling (llm/train/stability.py), float16 loss scaling.
  config.stability = stability = ml_collections.ConfigDict()
  stability.window = 50          # steps of running loss statistics
  stability.min_history = 20     # steps seen before the spike test arms
  stability.spike_std = 6.0      # a spike: loss above mean + spike_std * std of the window (0: off)
  stability.spike_ratio = 0.0    # or a perplexity above spike_ratio x the window's (0: off)
  stability.action = "rollback"  # on a spike or non-finite loss/gradients: rollback, stop, ignore
  stability.skip_batches = 0     # batches skipped after the offending one, beyond those since the
                                 # restored checkpoint (which are always skipped)
  stability.lr_factor = 1.0      # learning-rate multiplier for lr_factor_steps after a rollback
  stability.lr_factor_steps = 0
  stability.max_rollbacks = 5    # then stop with an error
  stability.initial_loss_scale = 2.0**15  # float16 only
  stability.loss_scale_growth = 2000      # good steps before the loss scale doubles

  # Alignment objectives (llm/align).
  config.align = align = ml_collections.ConfigDict()
  align.dpo_beta = 0.1
  align.dpo_label_smoothing = 0.0  # conservative DPO
  align.dpo_loss = "sigmoid"       # or "ipo"
  align.init_from = ""             # an objective run alone: the earlier run's workdir to start from
  align.reward_model_from = ""     # ppo run alone: the reward_model run's workdir
  align.conversations = 3000       # packaged ShareGPT conversations (10% held out by id hash)
  align.curriculum_stages = 4      # chat SFT: easy-to-hard blocks (0: a plain shuffle)
  # PPO and GRPO (llm/align/ppo.py): one rollout per rl_epochs x rl_minibatches steps.
  align.rl_algo = "ppo"            # or "grpo"
  align.prompt_tokens = 24         # prompts are cut or dropped to this length (chat template kept)
  align.rollout_prompts = 32
  align.group_size = 1             # samples per prompt (GRPO: > 1)
  align.new_tokens = 24
  align.temperature = 1.0
  align.rl_epochs = 2
  align.rl_minibatches = 2
  align.kl_coef = 0.1              # per-token KL penalty to the reference
  align.kl_target = 0.0            # > 0: adaptive KL coefficient aiming at this KL per sequence
  align.kl_horizon = 10_000
  align.max_kl = 0.0               # > 0: the bound the KL per sequence must stay under (reported)
  align.gamma = 1.0
  align.lam = 0.95
  align.clip = 0.2
  align.value_clip = 0.2
  align.vf_coef = 0.5

  config.checkpoint = checkpoint = ml_collections.ConfigDict()
  checkpoint.every_steps = 100
  checkpoint.every_minutes = 10.0
  checkpoint.keep = 3
  checkpoint.async_save = True
  return config


def load_experiment(name_or_path: str) -> ml_collections.ConfigDict:
  """get_config() of experiments/configs/<name>.py, or of a config file given by path."""
  path = pathlib.Path(name_or_path)
  if path.suffix != ".py":
    path = CONFIGS_DIR / f"{name_or_path}.py"
  if not path.exists():
    raise FileNotFoundError(f"no config file at {path}; pass a name under experiments/configs "
                            "or a path to a .py file defining get_config()")
  spec = importlib.util.spec_from_file_location(f"experiment_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def fail(field: str, problem: str, fix: str) -> None:
  """Raises ConfigError for `field` (the one error format of every config check)."""
  raise ConfigError(f"config.{field}: {problem}. {fix}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks the fields every run shares; raises ConfigError naming the field. Returns
  `config`. The model's choices are checked by llm/model/config_checks.py and each
  objective's own fields by its registry entry (llm/align/registry.py)."""
  _check_sizes(config)
  _check_data(config.data, config.model)
  _check_training(config)
  _check_stability(config.stability)
  return config


def _check_sizes(config) -> None:
  model, train = config.model, config.train
  for field, value in (("model.vocab_size", model.vocab_size), ("model.d_model", model.d_model),
                       ("model.num_layers", model.num_layers),
                       ("model.num_heads", model.num_heads),
                       ("model.num_kv_heads", model.num_kv_heads),
                       ("model.head_dim", model.head_dim), ("model.mlp_dim", model.mlp_dim),
                       ("model.max_seq_len", model.max_seq_len), ("train.steps", train.steps),
                       ("train.batch_size", train.batch_size),
                       ("train.grad_accum", train.grad_accum),
                       ("data.seq_len", config.data.seq_len)):
    if int(value) <= 0:
      fail(field, f"must be a positive integer, got {value}", "Set it to a value > 0.")
  if model.num_heads % model.num_kv_heads:
    fail("model.num_heads", f"{model.num_heads} heads are not divisible by num_kv_heads="
         f"{model.num_kv_heads}", "Grouped-query attention needs num_heads % num_kv_heads == 0.")
  if model.head_dim % 2:
    fail("model.head_dim", f"RoPE rotates pairs of dimensions, so head_dim must be even, got "
         f"{model.head_dim}", "Use an even head_dim.")
  if model.pipeline_schedule not in ("gpipe", "1f1b"):
    fail("model.pipeline_schedule", f"unknown schedule {model.pipeline_schedule!r}",
         "Use gpipe or 1f1b.")


def _check_data(data, model) -> None:
  if data.seq_len > model.max_seq_len:
    fail("data.seq_len", f"{data.seq_len} exceeds model.max_seq_len={model.max_seq_len}",
         "Lower data.seq_len or raise model.max_seq_len.")
  if data.tokenizer_vocab_size > model.vocab_size:
    fail("data.tokenizer_vocab_size", f"{data.tokenizer_vocab_size} exceeds model.vocab_size="
         f"{model.vocab_size}", "The embedding table must cover every token id.")
  if not 0.0 < data.heldout_fraction < 1.0:
    fail("data.heldout_fraction", f"must lie in (0, 1), got {data.heldout_fraction}",
         "Use e.g. 0.02.")
  for name in ("fim_rate", "fim_spm_rate"):
    if not 0.0 <= data[name] <= 1.0:
      fail(f"data.{name}", f"must lie in [0, 1], got {data[name]}", "Use e.g. 0.5.")
  if not 0.0 <= data.replay_share < 1.0 or (data.replay_share > 0 and not data.replay_source):
    fail("data.replay_share", f"must lie in [0, 1) with a data.replay_source, got "
         f"{data.replay_share} from {data.replay_source!r}", "E.g. replay_source=shakespeare, "
         "replay_share=0.05.")
  if not 0.0 <= data.instruction_share < 1.0:
    fail("data.instruction_share", f"must lie in [0, 1), got {data.instruction_share}",
         "The seed suggests about 0.01.")
  if data.tokenizer_type not in ("bpe", "unigram"):
    fail("data.tokenizer_type", f"unknown type {data.tokenizer_type!r}", "Use bpe or unigram.")


def _check_training(config) -> None:
  train, optim = config.train, config.optim
  if train.batch_size % train.grad_accum:
    fail("train.batch_size", f"{train.batch_size} is not divisible by train.grad_accum="
         f"{train.grad_accum}", "Each micro-batch must hold the same number of sequences.")
  if train.log_every < 1:
    fail("train.log_every", f"must be >= 1, got {train.log_every}", "Use e.g. 10.")
  if optim.clip_norm <= 0:
    fail("optim.clip_norm", f"must be positive, got {optim.clip_norm}",
         "Use e.g. 1.0 (a very large value effectively disables clipping).")
  if optim.warmup_steps > train.steps:
    fail("optim.warmup_steps", f"warmup of {optim.warmup_steps} steps is longer than the run "
         f"(train.steps={train.steps})", "Shorten the warmup or train longer.")
  if optim.lr <= 0:
    fail("optim.lr", f"learning rate must be positive, got {optim.lr}", "Use e.g. 3e-4.")
  if not 0.0 <= optim.min_lr_ratio <= 1.0:
    fail("optim.min_lr_ratio", f"must lie in [0, 1], got {optim.min_lr_ratio}",
         "It is the cosine floor as a fraction of optim.lr.")
  if config.checkpoint.keep < 1:
    fail("checkpoint.keep", f"must keep at least one checkpoint, got {config.checkpoint.keep}",
         "Use keep >= 1.")


def _check_stability(stability) -> None:
  if stability.action not in ("rollback", "stop", "ignore"):
    fail("stability.action", f"unknown action {stability.action!r}",
         "Use rollback, stop or ignore.")
  if stability.window < 2 or stability.min_history < 2:
    fail("stability.window", f"window {stability.window} and min_history "
         f"{stability.min_history} must be >= 2", "Use e.g. window=50, min_history=20.")
  if stability.lr_factor <= 0:
    fail("stability.lr_factor", f"must be positive, got {stability.lr_factor}",
         "Use e.g. 0.5.")
