"""The typed config tree and its validation.

Every run is described by one `ml_collections.ConfigDict` built by `default_config()` and
overridden by an `experiments/configs/<name>.py`. `validate` runs before anything compiles and
names the offending field in its error.
"""

import importlib.util
import pathlib

import ml_collections

# "cudnn" and "triton" run on NVIDIA GPUs only; "auto" picks per platform (attention_impls.py)
ATTENTION_IMPLS = ("xla", "pallas", "triton", "cudnn", "auto")
ROPE_SCALINGS = ("none", "linear", "ntk", "yarn", "llama3")
REMAT_POLICIES = ("none", "full", "save_dots", "save_attn_out", "save_qkv_proj")
# "auto": bfloat16 on GPUs and TPUs, float32 on CPU; float16 trains with dynamic loss scaling
DTYPES = ("auto", "float32", "bfloat16", "float16")
TASKS = ("lm", "sft", "chat_sft", "reward", "dpo", "ppo")  # the last four: llm/align/stage.py
CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"


class ConfigError(ValueError):
  """A config field holds an invalid value; the message names the field and the fix."""


def default_config() -> ml_collections.ConfigDict:
  """All fields with their defaults; experiment configs override a subset."""
  c = ml_collections.ConfigDict()
  c.name = "default"
  c.seed = 0

  c.model = m = ml_collections.ConfigDict()
  m.vocab_size = 2048
  m.d_model = 256
  m.num_layers = 4
  m.num_heads = 4
  m.num_kv_heads = 2
  m.head_dim = 64
  m.mlp_dim = 688
  m.max_seq_len = 256
  m.norm_eps = 1e-5
  m.tie_embeddings = True
  m.qkv_bias = False           # biases on the q/k/v projections (Qwen2)
  m.compute_dtype = "auto"
  m.attention_impl = "xla"
  m.remat_policy = "none"
  m.scan_layers = True
  m.pipeline_microbatches = 4  # micro-batches, used when the mesh has stage > 1
  m.pipeline_schedule = "gpipe"  # or "1f1b": activations held per stage bounded by stages
  m.init_std = 0.02
  # Mixture of experts (llm/model/moe.py): num_experts 0 keeps dense MLPs.
  m.moe = e = ml_collections.ConfigDict()
  e.num_experts = 0
  e.top_k = 2
  e.every = 1                # MoE in every k-th layer (layers k-1, 2k-1, ...)
  e.mode = "dropless"        # or "capacity": at most capacity_factor * N * k / E per expert
  e.capacity_factor = 1.25
  e.expert_mlp_dim = 0       # 0: model.mlp_dim
  e.shared_experts = 0       # dense experts every token also passes through
  e.new_experts = 0          # experts added for continual learning (own parameters)
  e.router_jitter = 0.0      # multiplicative input noise U(1 - j, 1 + j) while training
  e.load_balance_coef = 0.01
  e.z_loss_coef = 0.001
  # Low-rank adapters (llm/model/lora.py); rank 0: none. Train them alone with
  # train.trainable="lora".
  m.lora = ml_collections.ConfigDict(
      {"rank": 0, "alpha": 16.0, "dropout": 0.0,
       "targets": "q_proj,k_proj,v_proj,o_proj,gate,up,down"})
  m.side_adapter_dim = 0     # >0: a trainable side SwiGLU per block (zero-initialised output)
  m.rope = r = ml_collections.ConfigDict()
  r.theta = 10000.0
  r.scaling = "none"
  r.factor = 1.0
  r.original_max_seq_len = 256
  r.low_freq_factor = 1.0   # llama3
  r.high_freq_factor = 4.0  # llama3
  r.beta_fast = 32.0        # yarn
  r.beta_slow = 1.0         # yarn

  c.data = d = ml_collections.ConfigDict()
  d.source = "shakespeare"      # see llm/data/curation/sources.py
  d.max_chars = 2_000_000        # cap on raw text read, to bound tokenizer and packing time
  d.heldout_fraction = 0.02
  d.seq_len = 256
  d.tokenizer_vocab_size = 2048
  d.tokenizer_path = ""          # an existing sentencepiece model; empty trains one in the workdir
  d.tokenizer_type = "bpe"       # "bpe" or "unigram", when one is trained
  d.fim_rate = 0.0               # share of train documents rearranged for fill-in-the-middle
  d.fim_spm_rate = 0.5           # share of those in SPM rather than PSM order
  d.instruction_share = 0.0      # share of train characters from chat-templated conversations
  d.instruction_source = "sharegpt"
  d.pack_workers = 2             # processes that tokenize and pack
  d.curated_sources = ""         # with source="curated:DIR": comma-separated sources to use
  d.replay_source = ""           # general data mixed into training (continual pretraining)
  d.replay_share = 0.0           # its share of the train tokens (the seed suggests 0.05)
  d.sft_path = ""                # JSONL of {"prompt", "response"} records, for train.task="sft"

  # Device mesh sizes (llm/parallel); one may be -1: the rest of the devices.
  c.parallel = ml_collections.ConfigDict(
      {"data": -1, "fsdp": 1, "tensor": 1, "expert": 1, "stage": 1,
       "num_devices": 0})  # 0: every device; N: the first N (e.g. a 1-device reference)

  c.optim = o = ml_collections.ConfigDict()
  o.lr = 3e-3
  o.min_lr_ratio = 0.1
  o.warmup_steps = 20
  o.weight_decay = 0.1
  o.b1 = 0.9
  o.b2 = 0.95
  o.eps = 1e-8
  o.clip_norm = 1.0

  c.train = t = ml_collections.ConfigDict()
  t.task = "lm"
  t.trainable = ""             # comma-separated parameter-path parts to train; "" trains all
  t.steps = 200
  t.batch_size = 16            # sequences per optimizer step (all micro-batches together)
  t.grad_accum = 1
  t.log_every = 10
  t.eval_every = 100
  t.eval_batches = 4
  t.progress = True
  t.peak_flops = 0.0           # FLOP/s for MFU; 0 measures this machine's matmul peak at start

  # Loss-spike and non-finite handling (llm/train/stability.py), float16 loss scaling.
  c.stability = s = ml_collections.ConfigDict()
  s.window = 50              # steps of running loss statistics
  s.min_history = 20         # steps seen before the spike test arms
  s.spike_std = 6.0          # a loss above mean + spike_std * std of the window is a spike (0: off)
  s.spike_ratio = 0.0        # or a perplexity above spike_ratio x the window's (0: off)
  s.action = "rollback"      # on a spike or non-finite loss/gradients: rollback, stop or ignore
  s.skip_batches = 0         # batches skipped after the offending one, beyond those since the
                             # restored checkpoint (which are always skipped)
  s.lr_factor = 1.0          # learning-rate multiplier for lr_factor_steps after a rollback
  s.lr_factor_steps = 0
  s.max_rollbacks = 5        # then stop with an error
  s.initial_loss_scale = 2.0**15  # float16 only
  s.loss_scale_growth = 2000      # good steps before the loss scale doubles

  # Alignment objectives (llm/align).
  c.align = a = ml_collections.ConfigDict()
  a.dpo_beta = 0.1
  a.dpo_label_smoothing = 0.0  # conservative DPO
  a.dpo_loss = "sigmoid"       # or "ipo"
  a.init_from = ""             # chat_sft/reward/dpo/ppo run alone: the previous stage's workdir
  a.reward_from = ""           # ppo run alone: the reward model's workdir
  a.conversations = 3000       # packaged ShareGPT conversations (10% held out by id hash)
  a.curriculum_stages = 4      # chat SFT: easy-to-hard blocks (0: a plain shuffle)
  # PPO and GRPO (llm/align/ppo.py): one rollout per rl_epochs x rl_minibatches steps.
  a.rl_algo = "ppo"            # or "grpo"
  a.prompt_tokens = 24         # prompts are cut or dropped to this length (chat template kept)
  a.rollout_prompts = 32
  a.group_size = 1             # samples per prompt (GRPO: > 1)
  a.new_tokens = 24
  a.temperature = 1.0
  a.rl_epochs = 2
  a.rl_minibatches = 2
  a.kl_coef = 0.1              # per-token KL penalty to the reference
  a.kl_target = 0.0            # > 0: adaptive KL coefficient aiming at this KL per sequence
  a.kl_horizon = 10_000
  a.max_kl = 0.0               # > 0: the bound the KL per sequence must stay under (reported)
  a.gamma = 1.0
  a.lam = 0.95
  a.clip = 0.2
  a.value_clip = 0.2
  a.vf_coef = 0.5

  c.checkpoint = k = ml_collections.ConfigDict()
  k.every_steps = 100
  k.every_minutes = 10.0
  k.keep = 3
  k.async_save = True
  return c


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


def _fail(field: str, problem: str, fix: str) -> None:
  raise ConfigError(f"config.{field}: {problem}. {fix}")


def validate(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks cross-field constraints; raises ConfigError naming the field. Returns `c`."""
  m, o, t, d = c.model, c.optim, c.train, c.data
  for field, value in (("model.vocab_size", m.vocab_size), ("model.d_model", m.d_model),
                       ("model.num_layers", m.num_layers), ("model.num_heads", m.num_heads),
                       ("model.num_kv_heads", m.num_kv_heads), ("model.head_dim", m.head_dim),
                       ("model.mlp_dim", m.mlp_dim), ("model.max_seq_len", m.max_seq_len),
                       ("train.steps", t.steps), ("train.batch_size", t.batch_size),
                       ("train.grad_accum", t.grad_accum), ("data.seq_len", d.seq_len)):
    if int(value) <= 0:
      _fail(field, f"must be a positive integer, got {value}", "Set it to a value > 0.")
  if m.num_heads % m.num_kv_heads:
    _fail("model.num_heads", f"{m.num_heads} heads are not divisible by num_kv_heads="
          f"{m.num_kv_heads}", "Grouped-query attention needs num_heads % num_kv_heads == 0.")
  if m.head_dim % 2:
    _fail("model.head_dim", f"RoPE rotates pairs of dimensions, so head_dim must be even, got "
          f"{m.head_dim}", "Use an even head_dim.")
  if m.attention_impl not in ATTENTION_IMPLS:
    _fail("model.attention_impl", f"unknown attention implementation {m.attention_impl!r}",
          f"Choose one of {ATTENTION_IMPLS}.")
  if m.rope.scaling not in ROPE_SCALINGS:
    _fail("model.rope.scaling", f"unknown RoPE scaling {m.rope.scaling!r}",
          f"Choose one of {ROPE_SCALINGS}.")
  if m.rope.scaling != "none" and m.rope.factor < 1.0:
    _fail("model.rope.factor", f"a scaling factor below 1 shrinks the context ({m.rope.factor})",
          "Use factor >= 1 or rope.scaling='none'.")
  if m.remat_policy not in REMAT_POLICIES:
    _fail("model.remat_policy", f"unknown remat policy {m.remat_policy!r}",
          f"Choose one of {REMAT_POLICIES}.")
  if m.compute_dtype not in DTYPES:
    _fail("model.compute_dtype", f"unsupported dtype {m.compute_dtype!r}",
          f"Choose one of {DTYPES}; parameters always stay float32.")
  if d.seq_len > m.max_seq_len:
    _fail("data.seq_len", f"{d.seq_len} exceeds model.max_seq_len={m.max_seq_len}",
          "Lower data.seq_len or raise model.max_seq_len.")
  if d.tokenizer_vocab_size > m.vocab_size:
    _fail("data.tokenizer_vocab_size", f"{d.tokenizer_vocab_size} exceeds model.vocab_size="
          f"{m.vocab_size}", "The embedding table must cover every token id.")
  if not 0.0 < d.heldout_fraction < 1.0:
    _fail("data.heldout_fraction", f"must lie in (0, 1), got {d.heldout_fraction}",
          "Use e.g. 0.02.")
  for name in ("fim_rate", "fim_spm_rate"):
    if not 0.0 <= d[name] <= 1.0:
      _fail(f"data.{name}", f"must lie in [0, 1], got {d[name]}", "Use e.g. 0.5.")
  if not 0.0 <= d.replay_share < 1.0 or (d.replay_share > 0 and not d.replay_source):
    _fail("data.replay_share", f"must lie in [0, 1) with a data.replay_source, got "
          f"{d.replay_share} from {d.replay_source!r}", "E.g. replay_source=shakespeare, "
          "replay_share=0.05.")
  if not 0.0 <= d.instruction_share < 1.0:
    _fail("data.instruction_share", f"must lie in [0, 1), got {d.instruction_share}",
          "The seed suggests about 0.01.")
  if m.pipeline_schedule not in ("gpipe", "1f1b"):
    _fail("model.pipeline_schedule", f"unknown schedule {m.pipeline_schedule!r}",
          "Use gpipe or 1f1b.")
  if d.tokenizer_type not in ("bpe", "unigram"):
    _fail("data.tokenizer_type", f"unknown type {d.tokenizer_type!r}", "Use bpe or unigram.")
  if t.batch_size % t.grad_accum:
    _fail("train.batch_size", f"{t.batch_size} is not divisible by train.grad_accum="
          f"{t.grad_accum}", "Each micro-batch must hold the same number of sequences.")
  if t.log_every < 1:
    _fail("train.log_every", f"must be >= 1, got {t.log_every}", "Use e.g. 10.")
  if o.clip_norm <= 0:
    _fail("optim.clip_norm", f"must be positive, got {o.clip_norm}",
          "Use e.g. 1.0 (a very large value effectively disables clipping).")
  if t.task not in TASKS:
    _fail("train.task", f"unknown task {t.task!r}", f"Choose one of {TASKS}.")
  if t.task == "sft" and not d.sft_path:
    _fail("data.sft_path", "train.task='sft' needs a JSONL file of prompt/response records",
          "Set --config.data.sft_path=FILE.")
  if o.warmup_steps > t.steps:
    _fail("optim.warmup_steps", f"warmup of {o.warmup_steps} steps is longer than the run "
          f"(train.steps={t.steps})", "Shorten the warmup or train longer.")
  if o.lr <= 0:
    _fail("optim.lr", f"learning rate must be positive, got {o.lr}", "Use e.g. 3e-4.")
  if not 0.0 <= o.min_lr_ratio <= 1.0:
    _fail("optim.min_lr_ratio", f"must lie in [0, 1], got {o.min_lr_ratio}",
          "It is the cosine floor as a fraction of optim.lr.")
  if c.checkpoint.keep < 1:
    _fail("checkpoint.keep", f"must keep at least one checkpoint, got {c.checkpoint.keep}",
          "Use keep >= 1.")
  _validate_moe(m, c.parallel)
  _validate_stability(c.stability)
  _validate_lora(m.lora)
  _validate_align(c.align, t.task, t.batch_size)
  return c


def _validate_align(a, task: str, batch_size: int):
  if a.dpo_loss not in ("sigmoid", "ipo") or a.dpo_beta <= 0:
    _fail("align.dpo_loss", f"loss {a.dpo_loss!r} with beta {a.dpo_beta}",
          "Use sigmoid or ipo, with beta > 0 (default 0.1).")
  if a.rl_algo not in ("ppo", "grpo"):
    _fail("align.rl_algo", f"unknown algorithm {a.rl_algo!r}", "Use ppo or grpo.")
  if a.rl_algo == "grpo" and a.group_size < 2:
    _fail("align.group_size", f"GRPO compares samples of one prompt, got group_size "
          f"{a.group_size}", "Use group_size >= 2 (e.g. 4).")
  if a.rollout_prompts * a.group_size % a.rl_minibatches:
    _fail("align.rl_minibatches", f"{a.rollout_prompts} prompts x {a.group_size} samples do "
          f"not split into {a.rl_minibatches} minibatches", "Make the product divisible.")
  minibatch = a.rollout_prompts * a.group_size // a.rl_minibatches
  if task == "ppo" and minibatch != batch_size:
    _fail("train.batch_size", f"PPO trains on minibatches of the rollout: {a.rollout_prompts} "
          f"prompts x {a.group_size} / {a.rl_minibatches} = {minibatch} sequences, but "
          f"train.batch_size is {batch_size}", f"Set train.batch_size={minibatch}.")


def _validate_lora(lora):
  from llm.model.lora import TARGETS  # the model package imports this module
  if lora.rank < 0 or not 0.0 <= lora.dropout < 1.0:
    _fail("model.lora", f"rank {lora.rank} must be >= 0 and dropout {lora.dropout} in [0, 1)",
          "E.g. rank=8, alpha=16, dropout=0.05.")
  unknown = [t for t in lora.targets.split(",") if t.strip() and t.strip() not in TARGETS]
  if lora.rank and unknown:
    _fail("model.lora.targets", f"unknown projections {unknown}", f"Choose from {TARGETS}.")


def _validate_stability(s):
  if s.action not in ("rollback", "stop", "ignore"):
    _fail("stability.action", f"unknown action {s.action!r}", "Use rollback, stop or ignore.")
  if s.window < 2 or s.min_history < 2:
    _fail("stability.window", f"window {s.window} and min_history {s.min_history} must be >= 2",
          "Use e.g. window=50, min_history=20.")
  if s.lr_factor <= 0:
    _fail("stability.lr_factor", f"must be positive, got {s.lr_factor}", "Use e.g. 0.5.")


def _validate_moe(m, parallel):
  e = m.moe
  if e.num_experts == 0:
    return
  total = e.num_experts + e.new_experts
  if not 1 <= e.top_k <= total:
    _fail("model.moe.top_k", f"must lie in [1, {total}] (the experts), got {e.top_k}",
          "Mixtral uses top_k=2.")
  if e.mode not in ("dropless", "capacity"):
    _fail("model.moe.mode", f"unknown mode {e.mode!r}", "Use dropless or capacity.")
  if e.mode == "capacity" and e.capacity_factor <= 0:
    _fail("model.moe.capacity_factor", f"must be positive, got {e.capacity_factor}",
          "Use e.g. 1.25.")
  if e.every < 1 or m.num_layers % e.every:
    _fail("model.moe.every", f"{m.num_layers} layers do not split into groups of {e.every}",
          "Choose every >= 1 dividing model.num_layers.")
  if e.every > 1 and m.scan_layers:
    _fail("model.moe.every", "interleaved dense and MoE layers are not one scannable block",
          "Set --config.model.scan_layers=false, or moe.every=1.")
  if parallel.expert > 1 and total % parallel.expert:
    _fail("model.moe.num_experts", f"{total} experts do not split over parallel.expert="
          f"{parallel.expert} devices", "Use a number of experts divisible by it.")
  if parallel.stage > 1:
    _fail("parallel.stage", "MoE routing statistics do not cross pipeline stages yet",
          "Use parallel.stage=1 with MoE.")
