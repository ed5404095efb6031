"""The RL curves are written as a PNG image."""

from llm.align.plots import plot_rollouts


def test_curves_are_a_png_file(tmp_path):
  history = [{"score": 0.1 * i, "kl": 0.5 * i, "kl_coef": 0.1} for i in range(6)]
  path = plot_rollouts(history, str(tmp_path / "curves.png"), max_kl=4.0, kl_target=2.0)
  data = (tmp_path / "curves.png").read_bytes()
  assert path.endswith("curves.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
  assert not list(tmp_path.glob("*.tmp*"))  # written to a temporary name, then renamed
