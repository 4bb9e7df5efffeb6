#!/usr/bin/env bash
# Prepared device check (issue 8): run on the GPU machine from the repository root, e.g.
#
#     OUT=/some/dir scripts/gpu_check.sh
#
# No network and no pip there: numba, numba-cuda, torch, pandas, pytest and cython are installed,
# dlbench is not. The script
#   1. makes the package importable without installing it: a shim directory on PYTHONPATH where
#      dlbench/* -> ./dlbench/*, dlbench/kernels -> ./kernels, dlbench/suites -> ./suites;
#   2. records the environment (versions, missing optional modules, nvidia-smi) in env.txt;
#   3. builds the Cython extension in place (python setup.py build_ext --inplace), in the
#      background while the GPU is busy;
#   4. calibrates the GPU (FMA chains, copy/triad, torch SGEMM) -> gpu_calibration.json;
#   5. runs the CUDA tests on the real GPU (DLBENCH_TEST_REAL_GPU=1, every test with "cuda" in
#      its id) -> tests.txt, tests.xml;
#   6. runs `dlbench run gpu --quick` (falls back to suites/gpu.py's standalone runner when the
#      runner cannot run here) and the optimizer suite's numba-cuda variants;
#   7. writes gpu_table.md (the comparison against torch CUDA / cuDNN, TF32 off) and
#      gpu_summary.csv.
# Every stage has a time limit computed from the remaining budget (GPU_CHECK_BUDGET seconds,
# default 470: the whole check stays within 8 minutes); a failing stage is logged in stages.txt
# and the next one still runs. Exit status: 0 when the table was written.
#
# Rehearsal on a CPU machine (tests/test_gpu_check.py): GPU_CHECK_REHEARSE=1 skips the build,
# runs one simulator test instead of the GPU tests, and runs the suites (every variant is then
# recorded as skipped: the simulator is never timed). PYTHON selects the interpreter;
# GPU_CHECK_STAGES (comma-separated: env,build,calibrate,tests,suites,table; default all) a subset.
# Python runs from the shim directory, never from the repository root: there ./dlbench (without
# kernels/ and suites/) would shadow the shim on sys.path.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
OUT="${OUT:-$REPO/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || PY=python
REHEARSE="${GPU_CHECK_REHEARSE:-0}"
BUDGET="${GPU_CHECK_BUDGET:-470}"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
STAGES=",${GPU_CHECK_STAGES:-env,build,calibrate,tests,suites,table},"
LOG="$OUT/gpu_check.log"
: > "$OUT/stages.txt"

log() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG" >&2; }
left() { echo $(( DEADLINE - $(date +%s) )); }
cap() {  # cap LIMIT RESERVE: min(LIMIT, time left - RESERVE), at least 5 s
    local l; l=$(( $(left) - $2 )); (( l > $1 )) && l=$1; (( l < 5 )) && l=5; echo "$l"
}
want() { [[ "$STAGES" == *",$1,"* ]]; }
stage() {  # stage NAME SECONDS DIR CMD...: run in DIR with a time limit, output to $OUT/NAME.txt
    local name=$1 limit=$2 dir=$3 rc; shift 3
    log "$name: start (limit ${limit}s)"
    ( cd "$dir" && timeout --kill-after=10 "$limit" "$@" ) > "$OUT/$name.txt" 2>&1
    rc=$?
    echo "$name rc=$rc seconds=$(( $(date +%s) - START ))" >> "$OUT/stages.txt"
    if (( rc == 124 || rc == 137 )); then log "$name: TIMED OUT after ${limit}s"; else log "$name: exit $rc"; fi
    return $rc
}

# ---------------------------------------------------------------- 1. import shim
SHIM="$(mktemp -d "${TMPDIR:-/tmp}/dlbench-shim.XXXXXX")"
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/dlbench"
for f in "$REPO"/dlbench/*; do ln -s "$f" "$SHIM/dlbench/$(basename "$f")"; done
ln -s "$REPO/kernels" "$SHIM/dlbench/kernels"
ln -s "$REPO/suites" "$SHIM/dlbench/suites"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export DLBENCH_CACHE_DIR="${DLBENCH_CACHE_DIR:-$SHIM/cache}"
export DLBENCH_QUICK_CALIBRATION=1          # the CPU calibration is not what this check measures
export PYTHONDONTWRITEBYTECODE=1
if [[ "$REHEARSE" == 1 ]]; then export NUMBA_ENABLE_CUDASIM=1; else unset NUMBA_ENABLE_CUDASIM; fi
log "repo $REPO, out $OUT, python $PY, shim $SHIM, rehearse=$REHEARSE, budget ${BUDGET}s"

# ---------------------------------------------------------------- 2. environment
want env && stage env 60 "$SHIM" "$PY" - <<'EOF'
import importlib, os, platform, subprocess, sys
print("python", sys.version.split()[0], platform.platform())
for m in ["numpy", "numba", "numba_cuda", "torch", "pandas", "pyarrow", "scipy", "rich", "threadpoolctl",
          "matplotlib", "pytest", "hypothesis", "Cython"]:
    try:
        mod = importlib.import_module(m)
        print(f"{m:14s} {getattr(mod, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001
        print(f"{m:14s} MISSING ({type(e).__name__}: {e})")
import dlbench
print("dlbench from", dlbench.__file__)
from dlbench.backends import backend_status
for b in ("numba-cuda", "torch", "cython"):
    st = backend_status(b)
    print(f"backend {b}: available={st.available} mode={st.mode!r} {st.reason}")
try:
    import torch
    print("torch cuda", torch.cuda.is_available(), torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    print("cudnn", torch.backends.cudnn.version() if torch.cuda.is_available() else "")
except Exception as e:  # noqa: BLE001
    print("torch:", e)
try:
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout)
except Exception as e:  # noqa: BLE001
    print("nvidia-smi:", e)
EOF
want env && cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- 3. Cython build (background)
BUILD_PID=""
if [[ "$REHEARSE" == 1 ]] || ! want build; then
    echo "build skipped (rehearsal or not selected)" > "$OUT/build.txt"
    echo "build rc=skipped" >> "$OUT/stages.txt"
else
    ( stage build "$(cap 240 200)" "$REPO" "$PY" setup.py build_ext --inplace ) &
    BUILD_PID=$!
fi

# ---------------------------------------------------------------- 4. GPU calibration
want calibrate && stage calibrate "$(cap 90 300)" "$SHIM" "$PY" -c "
import json, sys
from dlbench.calibrate_gpu import calibrate_gpu
cal = calibrate_gpu(force=True)
json.dump(cal, open(sys.argv[1], 'w'), indent=1)
print(json.dumps(cal, indent=1))
" "$OUT/gpu_calibration.json"
[[ -s "$OUT/gpu_calibration.json" ]] || echo "{}" > "$OUT/gpu_calibration.json"

# ---------------------------------------------------------------- 5. CUDA tests
TESTS=(test_cuda_conv.py test_cuda_variants.py test_rnn_cuda.py test_optim_kernels.py test_momentum.py
       test_optim_api.py)
EXISTING=()
for t in "${TESTS[@]}"; do [[ -f "$REPO/tests/$t" ]] && EXISTING+=("$REPO/tests/$t"); done
if ! want tests; then
    :
elif [[ "$REHEARSE" == 1 ]]; then
    stage tests "$(cap 60 60)" "$SHIM" "$PY" -m pytest "$REPO/tests/test_cuda_variants.py" -k nan -q \
        -p no:cacheprovider --junitxml="$OUT/tests.xml"
    tail -n 25 "$OUT/tests.txt" >&2
else
    export DLBENCH_TEST_REAL_GPU=1
    stage tests "$(cap 230 170)" "$SHIM" "$PY" -m pytest "${EXISTING[@]}" -k cuda -q -p no:cacheprovider \
        --durations=15 --junitxml="$OUT/tests.xml"
    unset DLBENCH_TEST_REAL_GPU
    tail -n 25 "$OUT/tests.txt" >&2
fi

if [[ -n "$BUILD_PID" ]]; then
    log "waiting for the Cython build"
    wait "$BUILD_PID"
fi

# ---------------------------------------------------------------- 6. suites
CLI="import sys; from dlbench.cli import main; sys.exit(main())"
if want suites; then
rm -rf "$OUT/run_gpu" "$OUT/run_optim" "$OUT/gpu_standalone.csv"
if ! stage suite_gpu "$(cap 240 60)" "$SHIM" "$PY" -c "$CLI" run gpu --quick --out "$OUT/run_gpu" \
        || [[ ! -s "$OUT/run_gpu/results.csv" ]]; then
    log "dlbench run failed or wrote nothing: standalone fallback"
    stage suite_gpu_standalone "$(cap 240 45)" "$SHIM" "$PY" -c "
import sys
from dlbench.suites.gpu import run_standalone
run_standalone(quick=True).to_csv(sys.argv[1], index=False)
" "$OUT/gpu_standalone.csv"
fi
stage suite_optim "$(cap 90 30)" "$SHIM" "$PY" -c "$CLI" run optim --quick --backend numba-cuda \
    --out "$OUT/run_optim"
fi

# ---------------------------------------------------------------- 7. table
rc=0
if want table; then
stage table 30 "$SHIM" "$PY" - "$OUT" <<'EOF'
import json, os, sys
import pandas as pd
from dlbench.suites.gpu import markdown_table, summarize
out = sys.argv[1]
frames = []
for path in (os.path.join(out, "run_gpu", "results.csv"), os.path.join(out, "gpu_standalone.csv")):
    if os.path.exists(path) and os.path.getsize(path):
        frames.append(pd.read_csv(path, dtype={"message": str}, keep_default_na=False))
        break
if not frames:
    sys.exit("no gpu suite results to tabulate")
df = frames[0]
try:
    cal = json.load(open(os.path.join(out, "gpu_calibration.json")))
except (OSError, ValueError):
    cal = {}
md = "# dlbench GPU check\n\n" + markdown_table(df, cal)
opt = os.path.join(out, "run_optim", "results.csv")
if os.path.exists(opt):
    o = pd.read_csv(opt, dtype={"message": str}, keep_default_na=False)
    lines = ["| benchmark | status | time (us) | GB/s | Mparam/s |", "|---|---|---|---|---|"]
    for bench, g in o[o["backend"] == "numba-cuda"].groupby("benchmark", sort=False):
        val = lambda m: pd.to_numeric(g[g["metric"] == m]["value"], errors="coerce").max()
        lines.append(f"| {bench} | {g['status'].iloc[0]} | {val('time') * 1e6:.1f} | {val('gbs'):.0f} | "
                     f"{val('mparams_per_s'):.0f} |")
    md += "\n## optim suite, numba-cuda variants (--quick)\n\n" + "\n".join(lines) + "\n"
summarize(df, cal).to_csv(os.path.join(out, "gpu_summary.csv"), index=False)
open(os.path.join(out, "gpu_table.md"), "w").write(md)
print(md)
EOF
rc=$?
cat "$OUT/table.txt"
fi
log "done in $(( $(date +%s) - START ))s (table rc=$rc)"
exit $rc
