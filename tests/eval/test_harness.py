"""The evaluation harness against independent references: formulas, the datasets' own
reference solutions, and programs whose outcome is known."""

import math

import jax.numpy as jnp
import pytest

from llm.eval.bits_per_byte import bits_per_byte
from llm.eval.fim import fim_cases, fim_exact_match, fim_prompt
from llm.eval.gsm8k import extract_answer, gsm8k_exact_match, gsm8k_problems
from llm.eval.humaneval import humaneval_pass_at_1, humaneval_problems, program
from llm.eval.sandbox import run_program
from llm.tokenizer.base import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX


def test_bits_per_byte_of_a_uniform_model_is_its_formula(small_tokenizer):
  texts = ["To be, or not to be, that is the question.", "def f(x):\n    return x + 1\n" * 9]
  vocab = small_tokenizer.vocab_size
  uniform = lambda ids: jnp.zeros(ids.shape + (vocab,))  # noqa: E731
  result = bits_per_byte(uniform, small_tokenizer, texts, window=16)
  tokens = sum(len(small_tokenizer.encode(t)) for t in texts)
  size = sum(len(t.encode()) for t in texts)
  assert result["tokens"] == tokens and result["bytes"] == size
  assert result["bits_per_byte"] == pytest.approx(tokens * math.log2(vocab) / size, rel=1e-5)


@pytest.mark.parametrize("completion,expected", [
    ("She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "18"),
    ("The answer is 1,250 dollars.", "1250"),
    ("First 3 then 4, so 7.0", "7"),
    ("no number here", None)])
def test_gsm8k_answers_are_extracted(completion, expected):
  assert extract_answer(completion) == expected


def test_gsm8k_worked_answers_score_one_and_wrong_ones_zero():
  problems = gsm8k_problems(limit=20)
  assert len(problems) == 20 and all(p["target"] for p in problems)
  by_question = {p["question"]: p["answer"] for p in problems}
  assert gsm8k_exact_match(by_question.__getitem__, problems)["exact_match"] == 1.0
  assert gsm8k_exact_match(lambda q: "#### -1", problems)["exact_match"] == 0.0


def test_sandbox_reports_pass_failure_and_timeout():
  assert run_program("assert 1 + 1 == 2")["status"] == "passed"
  assert run_program("assert 1 + 1 == 3")["status"] == "failed"
  assert run_program("while True: pass", timeout=2.0)["status"] == "timeout"
  # A 1 s CPU limit under a 1.9 s wall clock: the CPU limit kills the program first.
  assert run_program("while True: pass", timeout=1.9)["status"] == "timeout"


@pytest.mark.parametrize("harm", [
    "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)",
    "import subprocess\nsubprocess.run(['true'])",
    "import os\nos.system('true')",
    "open('{outside}', 'w').write('x')",
    "import os\nos.close(os.open('{outside}', os.O_WRONLY | os.O_CREAT))",
    "import os\nopen('here', 'w').close()\nos.rename('here', '{outside}')"])
def test_sandbox_refuses_network_programs_and_writes_outside_its_folder(harm, tmp_path):
  outside = tmp_path / "escaped"
  result = run_program(harm.format(outside=outside))
  assert result["status"] == "failed" and "sandbox:" in result["stderr"]
  assert not outside.exists()


def test_sandbox_allows_files_in_its_own_folder():
  source = ("import os\nopen('a.txt', 'w').write('hi')\nos.rename('a.txt', 'b.txt')\n"
            "assert open('b.txt').read() == 'hi'\nos.remove('b.txt')")
  assert run_program(source)["status"] == "passed"


def test_humaneval_reference_solutions_pass_and_stubs_fail():
  problems = humaneval_problems(limit=6)
  by_prompt = {p["prompt"]: p["canonical_solution"] for p in problems}
  assert humaneval_pass_at_1(by_prompt.__getitem__, problems)["pass_at_1"] == 1.0
  assert humaneval_pass_at_1(lambda p: "    return None\n", problems)["pass_at_1"] == 0.0
  chat_style = ("```python\n" + problems[0]["prompt"] + problems[0]["canonical_solution"] +
                "```\nThis works because ...")  # a chat model's whole-function code block
  assert run_program(program(problems[0], chat_style))["passed"]


def test_fim_cases_rejoin_to_the_text_and_exact_match_scores_an_oracle(small_tokenizer):
  code = "\n".join(f"def f{i}(x):\n    y = x * {i}\n    return y + {i}\n" for i in range(5))
  cases = fim_cases([code, code.replace("x", "z")], count=2, seed=3)
  assert len(cases) == 2 and (cases[0]["prefix"] + cases[0]["middle"] + cases[0]["suffix"]) \
      in code
  assert fim_exact_match(lambda c: c["middle"] + "\nmore", cases)["exact_match"] == 1.0
  assert fim_exact_match(lambda c: "pass", cases)["exact_match"] == 0.0
  ids = fim_prompt(small_tokenizer, cases[0])
  specials = [small_tokenizer.special_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)]
  assert [i for i in ids if i in specials] == specials and ids[-1] == specials[-1]
