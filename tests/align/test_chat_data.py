"""Chat SFT rows: packed whole with segment ids, loss on every assistant turn only, curriculum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.align.chat_data import chat_rows, curriculum_order, difficulty, fixed_length_prompts
from llm.tokenizer.base import IM_END
from llm.tokenizer.chat import render_chat
from llm.train.lm_task import LMTask
from tests.conftest import micro_config

CONVERSATIONS = [
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Two plus two?"},
     {"role": "assistant", "content": "Four."}, {"role": "user", "content": "And times three?"},
     {"role": "assistant", "content": "Twelve."}],
    [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}],
]


def test_rows_pack_whole_conversations_and_train_every_assistant_turn(small_tokenizer):
  tok = small_tokenizer
  rows = chat_rows(tok, CONVERSATIONS, seq_len=64)
  trained = []
  for r in range(len(rows["inputs"])):
    for seg in sorted(set(rows["segment_ids"][r].tolist()) - {0}):
      at = rows["segment_ids"][r] == seg
      assert rows["positions"][r][at].tolist() == list(range(at.sum()))
      targets, mask = rows["targets"][r][at], rows["loss_mask"][r][at]
      trained.append(tok.decode([t for t, m in zip(targets, mask) if m]))
  assert sorted(trained) == sorted(["Blue.", "Four.Twelve.", "Hi!"])  # <|im_end|> is special
  ends = rows["targets"][rows["loss_mask"] > 0] == tok.special_id(IM_END)
  assert int(ends.sum()) == 4  # each assistant turn learns to stop
  assert max(len(set(r.tolist()) - {0}) for r in rows["segment_ids"]) >= 2  # packed together


def test_gradients_from_non_assistant_tokens_are_exactly_zero(small_tokenizer):
  config = micro_config(vocab_size=2048)
  rows = chat_rows(small_tokenizer, CONVERSATIONS * 2, seq_len=64)
  task = LMTask(config, rows)
  params, frozen = task.init(jax.random.PRNGKey(0))
  batch = {k: jnp.asarray(v) for k, v in rows.items()}
  outside = batch["loss_mask"] == 0
  altered = dict(batch, targets=jnp.where(outside, (batch["targets"] + 7) % 2048,
                                          batch["targets"]))
  grad = jax.jit(jax.grad(lambda p, b: task.loss_fn(p, frozen, b, None)[0]))
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), grad(params, batch),
                      grad(params, altered))
  assert all(jax.tree.leaves(same))  # what non-assistant tokens "predict" never matters

  def loss_of_logits(logits):
    from llm.train.losses import masked_cross_entropy
    return masked_cross_entropy(logits, batch["targets"], batch["loss_mask"])[0]
  logits = task.model(params)(batch["inputs"], batch["positions"], batch["segment_ids"])
  d_logits = jax.grad(loss_of_logits)(logits)
  assert float(jnp.abs(d_logits[outside]).max()) == 0.0
  assert float(jnp.abs(d_logits[~outside]).max()) > 0.0


def test_curriculum_goes_from_single_turn_to_multi_turn():
  conversations = CONVERSATIONS * 4
  order = curriculum_order(conversations, stages=2, seed=1)
  turns = [difficulty(conversations[i])[0] for i in order]
  assert sorted(order) == list(range(12))
  assert max(turns[:6]) <= min(turns[6:])  # the first stage is the single-turn half
  assert sorted(curriculum_order(conversations, stages=0)) == list(range(12))


def test_curriculum_rows_are_read_in_order():
  from llm.data.loader import train_batches
  rows = {"inputs": np.arange(12, dtype=np.int32)[:, None]}
  batches = train_batches(rows, 4, seed=0, shuffle=False)
  assert [next(batches)["inputs"][:, 0].tolist() for _ in range(4)] == [
      [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [0, 1, 2, 3]]


def test_fixed_length_prompts_keep_the_template_and_drop_short_messages(small_tokenizer):
  tok = small_tokenizer
  long_message = "Tell me everything about the colour blue and why the sky has it. " * 3
  prompts = fixed_length_prompts(tok, [long_message, "Hi", long_message[:40]], length=20)
  frame, _ = render_chat(tok, [{"role": "user", "content": ""}], add_generation_prompt=True)
  assert prompts.shape[1] == 20 and 1 <= len(prompts) <= 2  # "Hi" cannot fill 20 tokens
  head = frame.index(tok.special_id(IM_END))  # <|im_start|>user\n | <|im_end|>\n<|im_start|>...
  for row in prompts.tolist():
    assert row[:head] == frame[:head] and row[-(len(frame) - head):] == frame[head:]
    assert tok.decode(row[head:-(len(frame) - head)]) in long_message


def test_fixed_length_prompts_say_when_the_template_leaves_no_room(small_tokenizer):
  with pytest.raises(ValueError, match="prompt_tokens"):
    fixed_length_prompts(small_tokenizer, ["anything at all"], length=4)
