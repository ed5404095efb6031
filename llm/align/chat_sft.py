"""Chat SFT: the LM objective on conversations in the chat template, packed whole, loss on
every assistant turn, rows read in curriculum order (easy to hard); held-out assistant-token
loss before and after."""

import logging

from llm.align.chat_data import chat_rows
from llm.align.objective import StageInputs, trained_params
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.perplexity import model_perplexity


class ChatSFTTask(LMTask):
  """The LM objective on chat rows; rows are read in their curriculum order."""
  name = "chat_sft"
  shuffle = False


def build_chat_sft_task(config, inputs: StageInputs) -> ChatSFTTask:
  train_conversations, _ = inputs.conversations
  rows = chat_rows(inputs.tokenizer, [c["turns"] for c in train_conversations],
                   config.data.seq_len, config.align.curriculum_stages)
  return ChatSFTTask(config, rows, init_params=inputs.init_params)


def run_chat_sft(config, inputs: StageInputs, workdir: str):
  train_conversations, heldout_conversations = inputs.conversations
  logging.info("chat SFT on %d conversations (curriculum in %d stages)",
               len(train_conversations), config.align.curriculum_stages)
  heldout = chat_rows(inputs.tokenizer, [c["turns"] for c in heldout_conversations],
                      config.data.seq_len)
  task = build_chat_sft_task(config, inputs)
  batch = config.train.batch_size
  before = model_perplexity(task.model(inputs.init_params), heldout, batch)
  params = trained_params(train(config, task, workdir))
  after = model_perplexity(task.model(params), heldout, batch)
  return params, {"rows": int(len(task.train_rows["inputs"])), "steps": config.train.steps,
                  "heldout_assistant_loss_before": before["loss"],
                  "heldout_assistant_loss_after": after["loss"]}
