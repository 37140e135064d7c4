"""Shared pieces of the GPU modes (run_nn.py --gpu, run_ops.py --gpu).

oxmx and torch load different copies of cuDNN, so on the GPU each framework runs in its own
process, which prints its log and, on its last stdout line, its results as JSON. The driver
starts the processes one after the other and merges what they print.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import threading
import time

import numpy as np


def _log(s):
    print(s, flush=True)


def run_json_process(name, cmd, timeout, log=_log):
    """Run one framework's process, echoing its output as it comes (a run stopped at the
    time limit still shows how far it got). Returns the JSON object of its last stdout
    line, or None - after logging its exit status and stderr - when it fails, is stopped
    or prints no such line."""
    t0 = time.perf_counter()
    killed = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        timer = threading.Timer(timeout, lambda: (killed.append(True), proc.kill()))
        timer.start()
        last = None
        try:
            for line in proc.stdout:
                if last is not None:
                    log(last)
                last = line.rstrip("\n")
            rc = proc.wait()
        finally:
            timer.cancel()
        err.seek(0)
        stderr = err.read()
    result = None
    if rc == 0 and last:
        try:
            result = json.loads(last)
        except json.JSONDecodeError:
            pass
    if not isinstance(result, dict):
        result = None
        if last is not None:
            log(last)
    status = ", stopped at the time limit" if killed else (f", exit status {rc}" if rc else "")
    log(f"  ({name}: process took {time.perf_counter() - t0:.1f} s{status})")
    if result is None:
        if stderr.strip():
            log(stderr[-4000:].rstrip())
        if rc == 0:
            log(f"  ({name}: no JSON result on the last line)")
    return result


def nvidia_smi():
    """'name (memory, driver)' of the first GPU as nvidia-smi reports them ('?' without it)."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        name, memory, driver = (f.strip() for f in r.stdout.splitlines()[0].split(","))
        return f"{name} ({memory}, driver {driver})"
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return "?"


def machine_info():
    """What a GPU table says about the machine, gathered where the benchmark runs (a table
    may be written elsewhere, later, from saved JSON)."""
    return dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), gpu=nvidia_smi(),
                cpu_count=os.cpu_count(), python=platform.python_version(), numpy=np.__version__)


def machine_lines(info, versions, devices):
    """The table's header lines; `devices`: {framework: the device it reported}."""
    return [
        f"- date: {info['date']}; card: **{devices.get('torch', '?')}**; oxmx device {devices.get('oxmx', '?')}",
        f"- machine: {info['gpu']}; {info['cpu_count']} CPU cores",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", numpy {info['numpy']}, python {info['python']}",
    ]
