"""A search slot's training in a process of its own, so that slots train on all the cores at once.

Threads of one process cannot train side by side faster than one: tracing a candidate's training step
and Keras's per-step work hold Python's interpreter lock, and TensorFlow's thread pools are the process's.
`ProcessTrainScorer` is the `train` scorer of a slot when a job runs several: it hands each candidate to
one long-lived child process (spawned on first use, so TensorFlow is imported once per slot and job) and
relays the child's per-epoch `keep_going` questions to the search, which answers from the job's front.
The child dies with its worker, even one killed with SIGKILL, and a child that dies fails its trial only.
It ignores SIGINT and SIGTERM: a Ctrl-C in a terminal reaches the whole process group, and it is the worker's
to decide what becomes of the trial in flight (`kill_children` ends the children when it gives the trial up).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child imports nothing heavy before it is bound to its parent (see the end)
    from nas_service.controller.scoring import EpochCheck, Score
    from nas_service.spec import Training
    from search_spaces import ArchSpec


class TrainingProcessError(RuntimeError):
    """Training failed in the slot's process (the message names the original error) or the process died."""


_CHILDREN: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
"""The live training processes this process started."""


def kill_children() -> None:
    """SIGKILL every slot's training process (safe in a signal handler): the trials they trained end with
    `TrainingProcessError`, and the next candidate of a slot starts a new process."""
    for process in list(_CHILDREN):
        with contextlib.suppress(OSError):
            process.kill()


class ProcessTrainScorer:
    """`TrainScorer` run in this slot's own child process (see the module docstring), with TensorFlow's thread
    pools sized to `threads`, the slot's share of the cores (unless the environment sets them): slots' pools
    sized to all the cores contend for them (8-24% slower on 2 cores with 2 slots), and a small candidate's
    ops gain little from a second thread (1.37x its one-thread speed with two, on 2 cores). Fewer threads sum
    in another order: accuracies then match training alone within seed noise, not to the digit."""

    name = "train"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child: Connection | None = None
        self._from_child: Connection | None = None

    def score(self, arch: ArchSpec, *, dataset: str, training: Training, seed: int, keep_going: EpochCheck,
              artifacts_dir: Path) -> Score:
        from search_spaces import encode

        to_child, from_child = self._child()
        try:
            to_child.send((encode(arch), {"dataset": dataset, "training": training, "seed": seed,
                                          "artifacts_dir": artifacts_dir}))
            while True:
                message = from_child.recv()
                if message[0] == "epoch":
                    to_child.send(keep_going(message[1], message[2]))
                elif message[0] == "done":
                    score: Score = message[1]
                    return score
                else:
                    raise TrainingProcessError(f"{message[1]}: {message[2]}")
        except (EOFError, OSError):
            self.close()
            raise TrainingProcessError("the slot's training process died (out of memory?); it is restarted "
                                       "for the next candidate") from None
        except TrainingProcessError:
            raise
        except BaseException:
            self.close()  # interrupted mid-conversation: the child's state is unknown
            raise

    def _child(self) -> tuple[Connection, Connection]:
        if self._process is None or self._process.poll() is not None or not self._to_child or not self._from_child:
            self.close()
            down_read, down_write = os.pipe()
            up_read, up_write = os.pipe()
            self._process = subprocess.Popen(  # on a GPU each slot's TensorFlow takes memory as it needs it
                [sys.executable, "-m", __name__, str(down_read), str(up_write), str(os.getpid())],
                pass_fds=(down_read, up_write),
                env={"TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_NUM_INTRAOP_THREADS": str(self.threads),
                     "TF_NUM_INTEROP_THREADS": str(self.threads), **os.environ})
            _CHILDREN.add(self._process)
            os.close(down_read)
            os.close(up_write)
            self._to_child = Connection(down_write, readable=False)
            self._from_child = Connection(up_read, writable=False)
        return self._to_child, self._from_child

    def close(self) -> None:
        """Stop the child process (it is idle between candidates: closing its pipe ends it)."""
        for conn in (self._to_child, self._from_child):
            if conn is not None:
                conn.close()
        self._to_child = self._from_child = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def serve(requests: Connection, replies: Connection) -> None:
    """The child: train candidates one after another until the parent closes the pipe."""
    from nas_service.controller.scoring import TrainScorer
    from search_spaces import decode

    scorer = TrainScorer()
    while True:
        try:
            arch, kwargs = requests.recv()
        except EOFError:
            return

        def keep_going(epoch: int, accuracy: float) -> bool:
            replies.send(("epoch", epoch, accuracy))
            return bool(requests.recv())

        try:
            replies.send(("done", scorer.score(decode(arch), keep_going=keep_going, **kwargs)))
        except EOFError:
            return
        except Exception as exc:
            replies.send(("error", type(exc).__name__, str(exc)))


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the worker thread that started it ends, however the worker dies; leave
    at once if it died before this was set."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)


def close_scorer(scorer: Any) -> None:
    """Release what a scorer holds (a slot's training process), if anything."""
    close = getattr(scorer, "close", None)
    if close is not None:
        close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides (see the module docstring)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[3]))
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
