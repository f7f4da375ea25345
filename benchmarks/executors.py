"""Executors for :func:`benchmarks.runner.run`: where the cells of a grid are computed.

An executor is a callable ``executor(fn, cells)`` that yields ``fn(cell)`` for every cell, in any
order. ``map`` computes them in the driver, one after another; :class:`LocalWorkers` in N worker
processes on this machine; :class:`RayWorkers` on Ray actors, on this machine or on a cluster.
Both of the latter

* take a cell from ``cells`` only when a worker is free (the runner claims a cell in the store as
  it hands it out, so runs sharing one store still share the grid);
* keep their worker processes for the whole run, so a worker loads a prior once
  (:func:`benchmarks.build.load_prior` caches per process);
* retry a cell whose worker process died (``kill -9``, the OOM killer, a crash in native code) in a
  fresh process, ``retries`` times, then return it as a ``failed`` row;
* stamp each row with the machine (``host``) and the process (``worker``) that computed it.

Workers only compute: the driver alone writes the store and the artifacts. Per-image generators
(DESIGN §2) make a cell's result independent of the process that computes it, though not of its
torch thread count (oneDNN and BLAS split sums by thread): rows are bit-identical across executors
that give a cell the same ``threads`` (``benchmarks/studies/results/scaling.md``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

from .cell import CellResult, lost_result
from .registry import BenchmarkError
from .suite import Cell

RAY_INSTALL = 'pip install -e ".[ray]"'


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BenchmarkError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BenchmarkError(f"retries: expected an integer >= 0, got {value!r}")
    return value


def _stamp(result: CellResult, worker: str) -> CellResult:
    result.row.update(worker=worker, host=socket.gethostname())
    return result


# ---------------------------------------------------------------------------------------------
# Local worker processes
# ---------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    index: int
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    task: tuple[Cell, int] | None = None  # the cell it computes and how many times it was lost
    started: bool = False  # it said it is ready: a death from now on is the cell's


class LocalWorkers:
    """``workers`` processes on this machine (``restore-bench run --workers N``).

    Processes are started with *spawn* (never fork: torch's thread pools and CUDA do not survive a
    fork), each limited to ``threads`` torch threads (default: this machine's cores shared out,
    ``cores // workers``). With ``device="cuda"`` worker i computes on GPU ``i % device_count``;
    a cell's spec still says ``cuda``, so its key and result do not depend on the GPU.
    A worker exits with its driver (Linux: ``PR_SET_PDEATHSIG``), so a killed driver leaves no
    worker computing a cell nobody will store. Use as a context manager.

    :param retries: how many times a cell whose worker died is computed again before it is
        stored as ``failed``.
    """

    def __init__(self, workers: int, *, device: str = "cpu", threads: int | None = None,
                 retries: int = 2):
        self.workers = _positive_int(workers, "workers")
        self.threads = max(1, cpu_count() // workers) if threads is None else _positive_int(
            threads, "threads")
        self.retries = _retries(retries)
        self.gpus = 0
        if device == "cuda":  # no index given: share the GPUs out
            import torch
            self.gpus = torch.cuda.device_count()
        self._context = mp.get_context("spawn")
        self._slots: list[_Slot] = []

    def __enter__(self) -> "LocalWorkers":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(graceful=exc_type is None)

    def _start(self, index: int) -> _Slot:
        parent, child = self._context.Pipe()
        gpu = index % self.gpus if self.gpus else None
        process = self._context.Process(
            target=_worker_main, args=(child, self.threads, gpu, os.getpid()), daemon=True,
            name=f"restore-bench-worker-{index}")
        process.start()
        child.close()
        return _Slot(index, process, parent)

    def _restart(self, slot: _Slot) -> None:
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        slot.conn.close()
        fresh = self._start(slot.index)
        slot.process, slot.conn, slot.started = fresh.process, fresh.conn, False

    def _send(self, slot: _Slot, fn: Callable, task: tuple[Cell, int]) -> None:
        if not slot.process.is_alive():  # died while idle
            self._restart(slot)
        try:
            slot.conn.send((fn, task[0]))
        except (BrokenPipeError, ConnectionResetError):  # died just now
            self._restart(slot)
            slot.conn.send((fn, task[0]))
        slot.task = task

    def __call__(self, fn: Callable[[Cell], CellResult], cells: Iterable[Cell]) -> Iterator[CellResult]:
        """Yield ``fn(cell)`` for every cell as the workers finish them (any order)."""
        if not self._slots:
            self._slots = [self._start(i) for i in range(self.workers)]
        cells = iter(cells)
        lost: deque[tuple[Cell, int]] = deque()  # cells whose worker died, to compute again
        more = True
        while True:
            for slot in self._slots:
                if slot.task is not None:
                    continue
                if lost:
                    self._send(slot, fn, lost.popleft())
                elif more:
                    cell = next(cells, None)
                    if cell is None:
                        more = False
                    else:
                        self._send(slot, fn, (cell, 0))
            busy = [s for s in self._slots if s.task is not None]
            if not busy:
                return
            ready = set(wait([s.conn for s in busy] + [s.process.sentinel for s in busy]))
            for slot in busy:
                if slot.conn in ready or slot.process.sentinel in ready:
                    yield from self._collect(slot, lost)

    def _collect(self, slot: _Slot, lost: deque) -> Iterator[CellResult]:
        cell, attempts = slot.task
        try:
            if not slot.conn.poll():
                raise EOFError  # the process ended without a reply
            kind, payload = slot.conn.recv()
        except (EOFError, OSError):
            slot.process.join(timeout=5)
            code = slot.process.exitcode
            if not slot.started:  # not the cell's fault: a broken set-up would fail every cell
                raise BenchmarkError(f"a worker process exited while starting ({_exit_text(code)});"
                                     " its error is printed above") from None
            self._restart(slot)
            slot.task = None
            if attempts < self.retries:
                lost.append((cell, attempts + 1))
                return
            yield lost_result(cell, f"worker process died ({_exit_text(code)}) while computing "
                                    f"this cell, {attempts + 1} times")
            return
        if kind == "started":
            slot.started = True
            return
        slot.task = None
        if kind == "error":
            raise payload
        yield payload

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: let them finish (``graceful``) or kill them at once."""
        for slot in self._slots:
            if graceful:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
            else:
                slot.process.kill()
        for slot in self._slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots = []


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _exit_with_parent(parent_pid: int) -> None:
    """Have Linux kill this process when the driver dies (``kill -9`` included)."""
    if sys.platform.startswith("linux"):
        import ctypes
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _worker_main(conn: Connection, threads: int, gpu: int | None, parent_pid: int) -> None:
    """A worker's loop: say ``("started", None)``, then receive ``(fn, cell)`` and send back
    ``("result", fn(cell))`` or ``("error", exception)``; ``None`` or a closed pipe ends it."""
    _exit_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the workers
    import torch
    torch.set_num_threads(threads)
    if gpu is not None:
        torch.cuda.set_device(gpu)
    worker = f"local:{os.getpid()}"
    conn.send(("started", None))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, cell = task
        try:
            message = ("result", _stamp(fn(cell), worker))
        except Exception as err:  # noqa: BLE001 - run_cell keeps solver failures as rows; what
            # reaches here (missing data, a bad suite) stops the run, in the driver
            message = ("error", err)
        try:
            conn.send(message)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: send its text
            conn.send(("error", RuntimeError("".join(traceback.format_exception(message[1])))))


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------
def import_ray() -> Any:
    """``import ray``, or a usage error saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise BenchmarkError(f"--ray needs Ray, an optional extra: {RAY_INSTALL} ({err})") from err
    return ray


def ray_resources(suite: dict[str, Any], device: str, num_cpus: float | None = None,
                  num_gpus: float | None = None) -> tuple[float, float]:
    """``(num_cpus, num_gpus)`` each cell's Ray actor reserves: the CLI's values, else the suite's
    ``resources: {num_cpus, num_gpus}``, else 1 CPU and, with a CUDA device, 1 GPU."""
    given = suite.get("resources") or {}
    if not isinstance(given, dict) or set(given) - {"num_cpus", "num_gpus"}:
        raise BenchmarkError(f"suite {suite.get('name')!r}: resources must be a mapping with "
                             f"num_cpus and/or num_gpus, got {given!r}")
    cpus = given.get("num_cpus", 1) if num_cpus is None else num_cpus
    gpus = given.get("num_gpus", 1 if device.startswith("cuda") else 0) if num_gpus is None \
        else num_gpus
    for name, value, low in (("num_cpus", cpus, 0.0), ("num_gpus", gpus, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
                name == "num_cpus" and value == 0):
            raise BenchmarkError(f"{name}: expected a number {'> 0' if name == 'num_cpus' else '>= 0'}"
                                 f", got {value!r}")
    if device.startswith("cuda") and gpus == 0:
        raise BenchmarkError("--device cuda with --ray needs a GPU per cell: --num-gpus 1 "
                             "(or a fraction), or resources: {num_gpus: 1} in the suite")
    return float(cpus), float(gpus)


class _CellActor:
    """A Ray actor computing cells; it lives for the whole run, so it loads each prior once."""

    def __init__(self, threads: int):
        import torch
        torch.set_num_threads(threads)

    def ready(self) -> bool:
        return True

    def run(self, fn: Callable[[Cell], CellResult], cell: Cell) -> CellResult:
        import ray
        node = ray.get_runtime_context().get_node_id()
        return _stamp(fn(cell), f"ray:{node[:12]}:{os.getpid()}")


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a ``HOST:PORT`` or ``ray://HOST:PORT`` that nothing answers: Ray itself retries
    for minutes before it gives up (``auto`` is left to Ray, which reads the local cluster's file)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BenchmarkError(f"--ray {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise BenchmarkError(f"--ray {address}: cannot join the Ray cluster: nothing answers at "
                             f"{host}:{port} ({err})") from None


class RayWorkers:
    """Cells as tasks of Ray actors (``restore-bench run --ray [ADDRESS]``).

    ``address`` None (or ``"local"``) starts a Ray instance on this machine (on 127.0.0.1, no
    dashboard, this machine's cores); ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` joins a
    running cluster. If this process is already connected to Ray, that connection is used (and left
    open). One actor per ``num_cpus`` (and ``num_gpus``) that the cluster has, or ``actors`` of them;
    an actor killed mid-cell is restarted by Ray and the cell is retried on it (``max_task_retries``).
    Every node needs this package and the suite's files (data, checkpoints, ``module:function``
    files) at the same paths. Ray starts on the first call; use as a context manager.
    """

    def __init__(self, address: str | None = None, *, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 actors: int | None = None, threads: int | None = None, retries: int = 2):
        self.address = address or None
        self.num_cpus, self.num_gpus, self.retries = num_cpus, num_gpus, _retries(retries)
        self.actors = None if actors is None else _positive_int(actors, "workers")
        self.threads = max(1, int(num_cpus)) if threads is None else _positive_int(threads, "threads")
        self._actors: list[Any] = []
        self._owns_connection = False

    def __enter__(self) -> "RayWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Connect to Ray (or start it), and start the actors; returns when they are ready."""
        ray = import_ray()
        if not ray.is_initialized():
            quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
            if self.address in (None, "local"):
                ray.init(address="local", num_cpus=cpu_count(), include_dashboard=False,
                         _node_ip_address="127.0.0.1", **quiet)
            else:
                check_reachable(self.address)
                try:
                    ray.init(address=self.address, **quiet)
                except (ConnectionError, ray.exceptions.RayError) as err:  # none there, bad token
                    raise BenchmarkError(f"--ray {self.address}: cannot join the Ray cluster: "
                                         f"{err}") from err
            self._owns_connection = True
        n = self.actors or self._fit(ray.cluster_resources())
        actor = ray.remote(_CellActor).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=-1,
            max_task_retries=self.retries)
        self._actors = [actor.remote(self.threads) for _ in range(n)]
        ray.get([a.ready.remote() for a in self._actors])

    def _fit(self, total: dict[str, float]) -> int:
        """How many actors the cluster holds at once."""
        n = int(total.get("CPU", 0) // self.num_cpus)
        if self.num_gpus:
            n = min(n, int(total.get("GPU", 0) // self.num_gpus))
        if n < 1:
            raise BenchmarkError(f"the Ray cluster ({total.get('CPU', 0):g} CPUs, "
                                 f"{total.get('GPU', 0):g} GPUs) cannot hold one cell of "
                                 f"{self.num_cpus:g} CPUs and {self.num_gpus:g} GPUs")
        return n

    def __call__(self, fn: Callable[[Cell], CellResult], cells: Iterable[Cell]) -> Iterator[CellResult]:
        """Yield ``fn(cell)`` for every cell as the actors finish them (any order)."""
        import ray
        from ray.exceptions import RayError, RayTaskError
        if not self._actors:
            self.start()
        cells = iter(cells)
        idle, running = list(self._actors), {}
        while True:
            while idle:
                cell = next(cells, None)
                if cell is None:
                    break
                actor = idle.pop()
                running[actor.run.remote(fn, cell)] = (cell, actor)
            if not running:
                return
            [ref], _ = ray.wait(list(running), num_returns=1)
            cell, actor = running.pop(ref)
            idle.append(actor)
            try:
                result = ray.get(ref)
            except RayTaskError as err:  # fn itself raised (missing data): stop, as in one process
                raise (err.cause if isinstance(err.cause, BaseException) else err) from None
            except RayError as err:  # the actor died on this cell more often than retries allow
                result = lost_result(cell, f"Ray worker lost while computing this cell, "
                                           f"{self.retries + 1} times: {type(err).__name__}: {err}")
            yield result

    def close(self) -> None:
        """Stop the actors; disconnect (and stop a Ray instance this object started)."""
        if not self._actors and not self._owns_connection:
            return
        ray = import_ray()
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False
