#!/usr/bin/env bash
# Issue 13: oxmx's batch-1 GEMV kernels timed alone (Nsight Compute, L2 flushed before
# each kernel, clocks as the GPU sets them) for the decode shapes, both half types,
# group 64. Same set-up as scripts/gpu_test.sh (device tool, carry the extension):
#   command: bash scripts/gpu_gemv_kernel_time.sh
# Prints one line per shape and dtype: the GEMV's launch shape, its median time over the
# last 12 launches and TB/s (packed words + scales + biases).
set -u
PY=${PY:-/opt/torch/.venv/bin/python}
NCU=${NCU:-$(command -v ncu || echo /usr/local/cuda-13.0/bin/ncu)}
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
OUTDIR=${OUT:-/tmp}
# SHAPES (NxK words, e.g. "4096x4096") and DTYPES narrow the run
for shape in ${SHAPES:-4096x4096 14336x4096 4096x14336}; do
    shape=${shape/x/ }
    for dt in ${DTYPES:-bfloat16 float16}; do
        log="$OUTDIR/ncu_${shape// /x}_$dt.csv"
        # shellcheck disable=SC2086
        "$NCU" --metrics gpu__time_duration.sum --cache-control all --clock-control none --csv \
            "$PY" benchmarks/cuda/gemv_kernel_time.py $shape $dt 64 > "$log" 2>&1
        $PY - "$log" "$shape" "$dt" <<'PY'
import csv, statistics, sys
log, shape, dt = sys.argv[1:]
lines = open(log).read().splitlines()
byte_lines = [l for l in lines if l.startswith("bytes per product")]
if not byte_lines:
    print(shape, dt, "failed; log tail:", *lines[-8:], sep="\n  ")
    sys.exit()
nbytes = int(byte_lines[0].split(":")[1])
# ncu prints its table after the program ends, in launch order: the measured loop
# (REPEAT x 4 products) is the last thing the script runs
rows = [r for r in csv.reader(l for l in lines if l.startswith('"'))]
head, rows = rows[0], rows[1:]
col = {h: i for i, h in enumerate(head)}
unit = {"ns": 1e-9, "nsecond": 1e-9, "us": 1e-6, "usecond": 1e-6, "ms": 1e-3, "msecond": 1e-3}
times = [(r[col["Grid Size"]], r[col["Block Size"]],
          float(r[col["Metric Value"]].replace(",", "")) * unit.get(r[col["Metric Unit"]], 1e-9))
         for r in rows if r[col["Metric Name"]] == "gpu__time_duration.sum"][-12:]
shapes = sorted({(g, b) for g, b, _ in times})
t = statistics.median(x for _, _, x in times)
print(f"{shape.replace(' ', 'x'):>11} {dt:8} launch {shapes}  median {t * 1e6:7.2f} us  {nbytes / t / 1e12:5.2f} TB/s")
PY
    done
done
