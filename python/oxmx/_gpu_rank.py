"""Runs a script on the GPU of this process's local rank (``python -m oxmx._gpu_rank
script.py args...``): what ``python -m oxmx.launch --backend nccl --hosts ...`` starts
under mpirun, so that each process of a host drives its own GPU. CUDA_VISIBLE_DEVICES
must be set before oxmx is imported, hence this small entry point."""

import os
import runpy
import sys

_LOCAL_RANK = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID")


def local_rank(environ=os.environ):
    for v in _LOCAL_RANK:
        if v in environ:
            return environ[v]
    return None


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: python -m oxmx._gpu_rank script.py [args...]")
    r = local_rank()
    if r is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
        if gpus is None:
            os.environ["CUDA_VISIBLE_DEVICES"] = r
        elif int(r) < len(gpus):
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[int(r)]
        else:
            sys.exit(f"[launch] local rank {r} has no GPU: CUDA_VISIBLE_DEVICES lists {len(gpus)}.")
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python script.py` does
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
