"""nbgrader's ``Execute`` preprocessor, made to survive a hostile notebook (one submission per grading process).

What it adds to nbgrader 0.9.6 / nbclient 0.11:

* **cell time limit with a grace**: nbgrader interrupts a cell at ``timeout`` and moves on at once, so a kernel that
  ignores SIGINT makes every later cell time out as well. Here, after the interrupt (sent as a message: the kernel
  lives in a sandbox a signal from outside cannot reach) the kernel has ``interrupt_grace`` seconds to answer;
  if it does not, it is killed and the run fails as ``unresponsive``.
* **output limits**: per cell (later outputs are dropped, one marker says so) and per notebook (the kernel is
  killed: a notebook printing gigabytes would otherwise fill this process's memory).
* **incidents**: what went wrong and in which cell, kept in ``STATE`` for ``run.py`` to turn into a status.
* **guard reports**: the outputs of the guard cells (``guard.py``), taken as they arrive.
* **socket folder lock**: once the kernel is up, its ipc socket folder is made read-only to it (root mode).
"""

from __future__ import annotations

import os
import signal
import time
from queue import Empty

from nbclient.util import ensure_async, run_sync
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer, Unicode

STATE: dict = {"incidents": [], "cell": None, "guards": {}, "kernel": None, "ready": False, "dropped": 0,
               "watchdog": None, "notebook_timeout": None, "kernel_cpu": 0.0}


MAX_MESSAGE = 256 * 1024 * 1024  # one message bigger than this closes the connection (never decoded here)


class KernelStopped(RuntimeError):
    """The grader stopped the kernel (unresponsive, too much output); ``STATE`` says why."""


def reset_state(notebook_timeout: float | None = None) -> None:
    STATE.update(incidents=[], cell=None, guards={}, kernel=None, ready=False, dropped=0, watchdog=None,
                 notebook_timeout=notebook_timeout, kernel_cpu=0.0)


def stop_watchdog() -> None:
    if STATE["watchdog"] is not None:
        STATE["watchdog"].cancel()


def incident(kind: str, **details) -> None:
    STATE["incidents"].append({"kind": kind, "cell": STATE["cell"], "time": time.time(), **details})


def kill_kernel() -> None:
    """SIGKILL the sandbox (bwrap takes every process inside with it)."""
    process = STATE.get("kernel")
    if process is not None and process.poll() is None:
        try:  # its process group: without a sandbox (no pid namespace), a fork bomb's copies too
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()


def sandbox_processes() -> int:
    """How many processes run inside the kernel's sandbox (a fork bomb fills the process limit)."""
    import psutil

    process = STATE.get("kernel")
    try:
        return len(psutil.Process(process.pid).children(recursive=True)) if process is not None else 0
    except psutil.Error:
        return 0


def sandbox_cpu() -> float:
    """CPU seconds used so far by the processes in the kernel's sandbox."""
    import psutil

    process = STATE.get("kernel")
    try:
        tree = [psutil.Process(process.pid)] + psutil.Process(process.pid).children(recursive=True)
        return round(sum(sum(p.cpu_times()[:4]) for p in tree), 2)
    except (psutil.Error, AttributeError):
        return 0.0


def _size(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    data = content.get("data")
    if isinstance(data, dict):
        return sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())
    return len(str(content)[:10_000_000])


class SandboxedExecute(Execute):
    interrupt_grace = Float(3.0, help="Seconds a kernel has to answer an interrupt after a cell time-out.").tag(
        config=True)
    max_output_cell = Integer(1_000_000, help="Characters of output kept per cell.").tag(config=True)
    max_output_total = Integer(64_000_000, help="Characters of output after which the kernel is killed.").tag(
        config=True)
    guard_prefix = Unicode("", help="Source prefix of the guard cells (their outputs are collected).").tag(config=True)
    ipc_dir = Unicode("", help="The kernel's ipc socket folder, locked once the kernel is up.").tag(config=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._total = 0
        self._cell_sizes: dict[int, int] = {}
        self._current_msg_id: str | None = None
        self._output_task = None

    async def async_start_new_kernel(self, **kwargs) -> None:
        await super().async_start_new_kernel(**kwargs)
        STATE["kernel"] = getattr(self.km.provisioner, "process", None)

    async def async_start_new_kernel_client(self):
        """nbclient's, plus: no single message over ``MAX_MESSAGE`` is accepted (ZMQ_MAXMSGSIZE: zmq drops the
        connection rather than this process decoding a gigabyte at once; smaller floods are counted and stopped in
        ``process_message``); then the notebook's watchdog starts and the ipc folder is locked."""
        import zmq
        from nbclient.util import run_hook

        self.kc = self.km.client()
        self.kc.context.setsockopt(zmq.MAXMSGSIZE, max(MAX_MESSAGE, 2 * self.max_output_total))
        try:
            await ensure_async(self.kc.start_channels())
            await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        except Exception:
            await self._async_cleanup_kernel()
            raise
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)
        kc = self.kc
        STATE["ready"] = True
        if STATE["notebook_timeout"]:  # the notebook's clock starts once its kernel is up, not while it boots
            stop_watchdog()  # an assignment's previous notebook
            STATE["watchdog"] = notebook_watchdog(STATE["notebook_timeout"])
            STATE["watchdog"].start()
        if self.ipc_dir and os.geteuid() == 0:  # the sandbox uid can no longer create files there
            os.chown(self.ipc_dir, 0, 0)
            os.chmod(self.ipc_dir, 0o755)
        elif self.ipc_dir:
            os.chmod(self.ipc_dir, 0o555)
        return kc

    async def _async_cleanup_kernel(self) -> None:
        STATE["kernel_cpu"] = sandbox_cpu()  # read before the sandbox is killed (its CPU time dies with it)
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    # nbclient binds its sync wrappers to the base class's coroutines: re-bind them to ours
    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def on_cell_execute(self, **kwargs) -> None:
        cell, index = kwargs["cell"], kwargs["cell_index"]
        label = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        first = "" if self.guard_prefix and cell.source.startswith(self.guard_prefix) else \
            cell.source.strip().split("\n")[0][:80]
        STATE["cell"] = {"index": index, "grade_id": label, "first_line": first}

    def on_cell_executed(self, **kwargs) -> None:
        super().on_cell_executed(**kwargs)
        cell, index = kwargs["cell"], kwargs["cell_index"]
        if self.guard_prefix and cell.source.startswith(self.guard_prefix):
            STATE["guards"][index] = [dict(o) for o in cell.outputs]

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        self._current_msg_id, self._output_task = msg_id, task_poll_output_msg
        return await super()._async_poll_for_reply(msg_id, cell, timeout, task_poll_output_msg,
                                                   task_poll_kernel_alive)

    async def _async_handle_timeout(self, timeout, cell=None):
        if self._output_task is not None and self._output_task.done():
            # the kernel said "idle" for this cell, yet its execute_reply never came: the notebook tampers with
            # the kernel's messages (it dropped a reply carrying an error)
            incident("reply_missing")
            kill_kernel()
            raise KernelStopped("the kernel finished the cell but its reply never arrived")
        incident("cell_timeout", seconds=timeout)
        await ensure_async(self.km.interrupt_kernel())
        deadline = time.monotonic() + self.interrupt_grace
        while time.monotonic() < deadline:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=max(0.05, deadline - time.monotonic())))
            except Empty:
                break
            if msg["parent_header"].get("msg_id") == self._current_msg_id:
                return {"content": {**self.error_on_timeout, "status": "error"}}
        incident("unresponsive", grace=self.interrupt_grace, processes=sandbox_processes())
        kill_kernel()
        raise KernelStopped(f"the kernel ignored the interrupt for {self.interrupt_grace:g} s and was stopped")

    def process_message(self, msg, cell, cell_index):
        size = _size(msg.get("content", {}))
        self._total += size
        if self._total > self.max_output_total:
            if not any(i["kind"] == "output_flood" for i in STATE["incidents"]):
                incident("output_flood", limit=self.max_output_total)
                kill_kernel()
            if msg["msg_type"] != "status":
                return None
        kept = self._cell_sizes.get(cell_index, 0) + size
        self._cell_sizes[cell_index] = kept
        if kept > self.max_output_cell and msg["msg_type"] in ("stream", "display_data", "execute_result",
                                                               "update_display_data"):
            STATE["dropped"] += 1
            if STATE["dropped"] == 1 or kept - size <= self.max_output_cell:
                incident("output_truncated", limit=self.max_output_cell)
                cell.outputs.append(_marker(self.max_output_cell))
            return None
        return super().process_message(msg, cell, cell_index)


def _marker(limit: int):
    from nbformat.v4 import new_output

    return new_output("stream", name="stdout",
                      text=f"\n[grader: output of this cell cut at {limit:,} characters]\n")


def notebook_watchdog(seconds: float):
    """A timer that records ``notebook_timeout`` and kills the kernel when the whole run takes too long."""
    import threading

    def fire() -> None:
        incident("notebook_timeout", seconds=seconds)
        kill_kernel()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    return timer


def exit_description(process) -> str:
    """How the sandbox ended: an exit code, or the signal that killed the kernel inside it."""
    code = None if process is None else process.poll()
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code > 128 and code - 128 in signal.valid_signals():
        return f"killed by {signal.Signals(code - 128).name}"
    return f"exit code {code}"
