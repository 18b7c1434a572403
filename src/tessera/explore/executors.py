"""Where the points of a sweep run: this process, a local process pool, or a Dask cluster.

:func:`run_tasks` calls ``fn(task, shared)`` for every task and yields ``(index, result)`` in
completion order, so the caller can cache each result the moment it arrives:

- ``workers=1``: one after the other in this process (debugging, tiny sweeps);
- ``workers=N`` (default: the CPU count): a :class:`concurrent.futures.ProcessPoolExecutor`
  with the ``spawn`` start method (no fork of a threaded parent);
- ``scheduler="tcp://host:port"``: a ``dask.distributed`` cluster (``pip install
  'tessera-fpga[explore]'``); ``shared`` is scattered to every worker once. The workers need Tessera
  (and the FPGA tools for builds) installed; bitstreams land on the worker's disk.

When the consumer stops early (an exception, Ctrl-C), pending tasks are cancelled and the local
workers are interrupted, so nothing keeps running behind the user's back.
"""

from __future__ import annotations

import os
import signal

__all__ = ["run_tasks", "default_workers"]


def default_workers() -> int:
    """Return the default local worker count: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:           # not on Linux
        return max(1, os.cpu_count() or 1)


def _serial(fn, tasks, shared):
    for index, task in enumerate(tasks):
        yield index, fn(task, shared)


def _stop_pool(pool, futures):
    for future in futures:
        future.cancel()
    processes = list(getattr(pool, "_processes", None) or {})   # private, but the only handle
    for pid in processes:
        try:
            os.kill(pid, signal.SIGINT)    # KeyboardInterrupt: a running build kills its tools
        except ProcessLookupError:
            pass
    pool.shutdown(wait=True, cancel_futures=True)


def _local_pool(fn, tasks, shared, workers):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                               mp_context=multiprocessing.get_context("spawn"))
    futures = {pool.submit(fn, task, shared): index for index, task in enumerate(tasks)}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield futures[future], future.result()
    except BaseException:
        _stop_pool(pool, pending)
        raise
    pool.shutdown(wait=True)


def _dask(fn, tasks, shared, scheduler):
    try:
        from distributed import Client, as_completed
    except ImportError:
        from tessera.install import MissingDependencyError, install_hint
        raise MissingDependencyError(f"--scheduler needs dask.distributed: "
                                     f"{install_hint('explore')}") from None
    if isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise OSError(f"Cannot reach the Dask scheduler at {scheduler} ({e}); start one "
                          "with 'dask scheduler' and workers with 'dask worker ADDRESS', or "
                          "drop --scheduler to run on local processes") from None
    try:
        shared_future = client.scatter(shared, broadcast=True)
        futures = client.map(fn, tasks, shared=shared_future, pure=False)
        index_of = {future.key: index for index, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                yield index_of[future.key], future.result()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if client is not scheduler:
            client.close()


def run_tasks(fn, tasks, shared, *, workers=None, scheduler=None):
    """Run ``fn(task, shared=shared)`` for every task; yield ``(index, result)`` as each ends.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers).
    tasks : list
        Picklable arguments, one per call.
    shared : object
        A second argument common to all calls (sent to each worker once with Dask).
    workers : int, optional
        Local worker processes (default :func:`default_workers`); 1 runs in this process.
        Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (``"tcp://host:8786"``), or a connected client.

    Raises
    ------
    ValueError
        ``workers`` is not a positive integer.
    """
    tasks = list(tasks)
    if not tasks:
        return iter(())
    if scheduler is not None:
        return _dask(fn, tasks, shared, scheduler)
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, not {workers!r}")
    if workers == 1:
        return _serial(lambda task, shared: fn(task, shared=shared), tasks, shared)
    return _local_pool(_Call(fn), tasks, shared, workers)


class _Call:
    """``fn(task, shared=shared)`` as a picklable callable of two positional arguments."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, task, shared):
        return self.fn(task, shared=shared)
