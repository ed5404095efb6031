"""Executors for per-document stages: in-process, a local process pool, or Ray.

All three apply the same pure function and yield results in input order, so the output of a
curation run does not depend on where it ran.
"""

import contextlib
import itertools
import multiprocessing
from typing import Callable, Iterable, Iterator

EXECUTORS = ("local", "ray")


def _batches(items: Iterable, size: int) -> Iterator[list]:
  iterator = iter(items)
  while batch := list(itertools.islice(iterator, size)):
    yield batch


def _apply_batch(fn: Callable, batch: list) -> list:
  return [fn(item) for item in batch]


@contextlib.contextmanager
def ordered_map(fn: Callable, items: Iterable, executor: str, workers: int, chunk_size: int,
                ray_address: str = ""):
  """Context manager yielding an iterator over fn(item) for each item, in order.

  "local" uses a spawn process pool of `workers` (in-process when workers <= 1); "ray" sends
  batches of `chunk_size` items as Ray tasks, at most 2 x workers in flight, on a local Ray
  started here (`ray_address` empty) or on the cluster at `ray_address` ("auto" for the
  current one).
  """
  if executor == "ray":
    with _ray_map(fn, items, workers, chunk_size, ray_address) as results:
      yield results
  elif executor != "local":
    raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
  elif workers <= 1:
    yield map(fn, items)
  else:
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
      yield pool.imap(fn, items, chunksize=chunk_size)
    finally:
      pool.close()
      pool.join()


def _import_ray():
  try:
    import ray
  except ImportError as error:
    raise ImportError("executor='ray' needs Ray: pip install -e '.[scale]'") from error
  return ray


@contextlib.contextmanager
def executor_session(executor: str, workers: int, ray_address: str = ""):
  """Keeps one Ray instance up for every `ordered_map` inside (starting Ray costs seconds);
  nothing to do for "local"."""
  if executor != "ray":
    yield
    return
  ray = _import_ray()
  started_here = not ray.is_initialized()
  if started_here:
    ray.init(address=ray_address or None, num_cpus=None if ray_address else workers,
             include_dashboard=False, log_to_driver=False)
  try:
    yield
  finally:
    if started_here:
      ray.shutdown()


@contextlib.contextmanager
def _ray_map(fn, items, workers, chunk_size, ray_address):
  ray = _import_ray()
  with executor_session("ray", workers, ray_address):
    remote_batch = ray.remote(_apply_batch)
    fn_ref = ray.put(fn)

    def results():
      in_flight = []
      for batch in _batches(items, chunk_size):
        in_flight.append(remote_batch.remote(fn_ref, batch))
        if len(in_flight) >= 2 * max(workers, 1):
          yield from ray.get(in_flight.pop(0))
      for ref in in_flight:
        yield from ray.get(ref)

    yield results()
