#!/usr/bin/env bash
# gpu-proof.sh: prove gradflow's CUDA half on a machine with an NVIDIA GPU, in one command.
#
#   scripts/gpu-proof.sh [OUT_DIR]        (OUT_DIR defaults to $OUT)
#
# Stages, each under `timeout`, each with its own log in OUT_DIR, all run even when one fails:
#   versions         nvidia-smi and cupy.show_config() into files
#   tests-cuda       the whole test suite with GRADFLOW_DEVICE=cuda (JUnit XML)
#   tests-cuda-only  the [cuda]-parametrized tests (-k cuda) with the default device left on
#                    the CPU, so an array that leaks to the default device fails loudly
#   mnist-gpu        examples/train_mnist.py on the GPU: 1 epoch with a checkpoint, then
#                    --resume to 2 (full MNIST when its files are found, else the embedded sample)
#   memory-pool      CuPy's pool after 10, 100 and 1,000 steps of the MNIST MLP: must stay flat
#   bench            python -m gradflow.bench --mode quick --rounds 3: CPU vs GPU (fails
#                    without GPU rows), results in OUT_DIR
#   nccl             optional: gradflow.distributed's NCCL backend as a group of one on GPU 0
#                    (all_reduce, broadcast, a DistributedDataParallel step); needs mpi4py and
#                    libnccl, says NOT RUN without them
#   mnist-cpu        optional, when time is left: the same first epoch on the CPU, for comparison
# It ends with OUT_DIR/summary.txt (also printed) and exits 1 when a required stage failed.
# Without a usable GPU it stops at once: one line on stderr, exit 3 (2: bad usage).
#
# Needs Python with CuPy, NumPy, pytest and hypothesis (pytest-benchmark, numba, tqdm and
# matplotlib are used when present); no network, no installation: gradflow runs from this
# checkout (PYTHONPATH). Settings, all optional:
#   PYTHON                 the interpreter (default: python3, else python)
#   GRADFLOW_MNIST_DIR     a folder with the four MNIST idx files (raw or .gz); also MNIST_DIR;
#                          default ../shared/data/mnist beside the checkout, when it holds them
#   GPU_PROOF_BUDGET_S     seconds for the whole run (default 520: under 9 minutes)
#   GPU_PROOF_STAGES       the stages to run, e.g. "mnist-gpu memory-pool" (default: all)
#   GRADFLOW_TEST_TIMEOUT  seconds one test may run (default 120; see tests/conftest.py)
#   GPU_PROOF_KEEP_CHECKPOINTS=1  keep the MNIST checkpoints (about 21 MB each; deleted by default)
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

die() {  # one line on stderr, then exit with status $1
    local status=$1
    shift
    printf 'gpu-proof: %s\n' "$*" >&2
    exit "$status"
}

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *) ;;
esac
[ "$#" -le 1 ] || die 2 "too many arguments: usage: scripts/gpu-proof.sh [OUT_DIR]"
OUT_DIR="${1:-${OUT:-}}"
[ -n "$OUT_DIR" ] || die 2 "no output directory: pass one as the first argument or set OUT"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    PY="$(command -v python3 || command -v python || true)"
fi
[ -n "$PY" ] || die 2 "no Python found: set PYTHON to an interpreter that has CuPy"
command -v timeout >/dev/null 2>&1 || die 2 "the timeout command (GNU coreutils) is missing"

# --- which stages, and the time each is sure of --------------------------------------------------
ALL_STAGES="versions tests-cuda tests-cuda-only mnist-gpu memory-pool bench nccl mnist-cpu"
STAGES="${GPU_PROOF_STAGES:-$ALL_STAGES}"
STAGES="${STAGES//,/ }"
[ -n "${STAGES// /}" ] || die 2 "GPU_PROOF_STAGES is empty (stages: $ALL_STAGES)"
for stage in $STAGES; do
    case " $ALL_STAGES " in
        *" $stage "*) ;;
        *) die 2 "GPU_PROOF_STAGES: unknown stage '$stage' (stages: $ALL_STAGES)" ;;
    esac
done
# The least time each stage needs: a stage never runs into the minimums of the selected
# stages after it, so a slow test suite cannot leave the MNIST run no time at all.
declare -A MIN_S=([versions]=20 [tests-cuda]=120 [tests-cuda-only]=60 [mnist-gpu]=60
                  [memory-pool]=45 [bench]=60 [nccl]=0 [mnist-cpu]=0)
selected() {  # is stage $1 among the ones to run?
    case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
reserve_after() {  # seconds kept for the selected stages after stage $1
    local stage after=0 sum=0
    for stage in $ALL_STAGES; do
        if [ "$after" = 1 ] && selected "$stage"; then
            sum=$((sum + MIN_S[$stage]))
        fi
        [ "$stage" = "$1" ] && after=1
    done
    echo "$sum"
}

BUDGET_S="${GPU_PROOF_BUDGET_S:-520}"
case "$BUDGET_S" in
    '' | *[!0-9]*) die 2 "GPU_PROOF_BUDGET_S must be whole seconds, got '$BUDGET_S'" ;;
    *) ;;
esac
DEADLINE=$((SECONDS + BUDGET_S))  # SECONDS counts from the script's start
KILL_GRACE=10  # timeout's --kill-after: a stage that ignores SIGINT gets SIGKILL this much later

# --- is there a GPU? Answered before anything is written, in one line. --------------------------
command -v nvidia-smi >/dev/null 2>&1 \
    || die 3 "no NVIDIA GPU here: nvidia-smi is not on PATH (run this on a machine with a GPU)"
smi_out="$(timeout 30 nvidia-smi -L 2>&1)" \
    || die 3 "no usable NVIDIA GPU: nvidia-smi -L failed: ${smi_out%%$'\n'*}"
gpu_check='
import sys
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:  # ImportError, or a CUDA error when the driver or runtime is missing
    what = "cannot be imported" if "cupy" not in sys.modules else "cannot reach a GPU"
    msg = (str(exc).splitlines() or [""])[0]
    print(f"CuPy {what} ({type(exc).__name__}: {msg})")
    sys.exit(1)
if n < 1:
    print("CuPy sees 0 CUDA devices (CUDA_VISIBLE_DEVICES, or a CuPy built for another CUDA)")
    sys.exit(1)
print(f"{n} CUDA device(s), CuPy {cupy.__version__}")
'
gpu_line="$(timeout 120 "$PY" -c "$gpu_check" 2>/dev/null)"
gpu_rc=$?
gpu_line="${gpu_line%%$'\n'*}"
if [ "$gpu_rc" -ne 0 ]; then
    [ "$gpu_rc" -eq 124 ] && gpu_line="importing CuPy took over 120 s"
    die 3 "no usable GPU: ${gpu_line:-$PY could not run the CuPy check (exit $gpu_rc)}"
fi

mkdir -p "$OUT_DIR" || die 2 "cannot create the output directory $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SUMMARY="$OUT_DIR/summary.txt"

# --- settings every stage shares -----------------------------------------------------------------
cd "$ROOT" || die 2 "cannot enter $ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TQDM_DISABLE=1
export GRADFLOW_TEST_TIMEOUT="${GRADFLOW_TEST_TIMEOUT:-120}"

MNIST_ROOT="${GRADFLOW_MNIST_DIR:-${MNIST_DIR:-}}"
mnist_given=${MNIST_ROOT:+yes}
[ -n "$MNIST_ROOT" ] || MNIST_ROOT="$ROOT/../shared/data/mnist"
has_mnist() {  # the four files, raw or gzipped, in $1 or $1/mnist (where MNIST(root=) looks)
    local dir stem
    for dir in "$1/mnist" "$1"; do
        for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
                    t10k-labels-idx1-ubyte; do
            [ -f "$dir/$stem.gz" ] || [ -f "$dir/$stem" ] || continue 2
        done
        return 0
    done
    return 1
}
if has_mnist "$MNIST_ROOT"; then
    MNIST_ROOT="$(cd "$MNIST_ROOT" && pwd)"
    MNIST_DESC="full MNIST from $MNIST_ROOT"
else
    # Only the files on disk: with none, `--dataset mnist` would try the network first.
    MNIST_DESC="embedded MNIST sample${mnist_given:+ (no MNIST files in $MNIST_ROOT)}"
    MNIST_ROOT=""
fi
export PY OUT_DIR MNIST_ROOT

# --- the stage runner ----------------------------------------------------------------------------
NAMES=()
STATUSES=()
DETAILS=()
FAILED=0

record() {  # record NAME STATUS SECONDS DETAIL: one summary row
    NAMES+=("$1")
    STATUSES+=("$2")
    DETAILS+=("$(printf '%4ss  %s' "$3" "$4")")
    printf '   %-7s %s (%ss) %s\n' "$2" "$1" "$3" "$4"
}

# run_stage NAME CAP_S COMMAND...: run COMMAND in the checkout with its output in
# OUT_DIR/NAME.log, for at most CAP_S seconds and never into the time kept for the selected
# stages after it. Sets STAGE_RC (124: timed out, 125: not run) and STAGE_S.
run_stage() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - SECONDS - $(reserve_after "$name") - KILL_GRACE))
    local limit=$((cap < left ? cap : left))
    STAGE_S=0
    if [ "$limit" -lt 15 ]; then
        STAGE_RC=125
        printf '== %s: not run, %ss left of the %ss budget\n' "$name" \
            "$((DEADLINE - SECONDS))" "$BUDGET_S"
        return
    fi
    printf '== %s (at most %ss): %s\n' "$name" "$limit" "$*"
    local t0=$SECONDS
    # SIGINT first: pytest then stops like on Ctrl-C and still writes its JUnit XML and
    # summary; train_mnist.py saves a checkpoint. SIGKILL follows for whatever ignores it.
    timeout --signal=INT --kill-after="$KILL_GRACE" "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    STAGE_RC=$?
    STAGE_S=$((SECONDS - t0))
    if [ "$STAGE_RC" -eq 137 ]; then
        STAGE_RC=124  # killed after ignoring SIGINT: a timeout too
    fi
    if [ "$STAGE_RC" -eq 124 ]; then
        printf '\n[gpu-proof: stopped after %ss, its time limit]\n' "$limit" >>"$OUT_DIR/$name.log"
    fi
}

# finish NAME DETAIL [required|optional]: turn STAGE_RC into a summary row; a required stage
# that did not pass makes the whole run fail. The last lines of a failed stage's log are shown.
finish() {
    local name=$1 detail=$2 kind=${3:-required} status
    case "$STAGE_RC" in
        0) status=PASS ;;
        124) status=TIMEOUT ;;
        125) status=SKIPPED ;;
        *) status=FAIL ;;
    esac
    if [ "$status" != PASS ]; then
        [ "$STAGE_RC" -ne 125 ] && detail="exit $STAGE_RC; $detail"
        if [ "$kind" = required ]; then
            FAILED=1
        else
            detail="optional; $detail"
        fi
        if [ -s "$OUT_DIR/$name.log" ]; then
            tail -n 15 "$OUT_DIR/$name.log" | sed 's/^/   | /'
        fi
    fi
    record "$name" "$status" "$STAGE_S" "${detail%%[:;] }"
}

junit_counts() {  # "N passed, N failed, N errors, N skipped" from a JUnit XML file
    "$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as exc:
    print(f"no JUnit XML ({type(exc).__name__})")
    sys.exit()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
print(f"{passed} passed, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped")
EOF
}

epoch_lines() {  # the example's per-epoch result lines of a log, joined with " | "
    # A progress bar (a tqdm that ignores TQDM_DISABLE) shares lines with them through \r.
    tr '\r' '\n' <"$1" | grep -E '^epoch +[0-9]+/[0-9]+ +train loss' | sed -E 's/ +/ /g' \
        | paste -sd '|' - | sed 's/|/ | /g'
}

# Stage bodies with several commands, run by `timeout bash -c NAME` (hence exported, and
# called only indirectly, which shellcheck cannot see).
# shellcheck disable=SC2317
stage_versions() {
    local rc=0
    nvidia-smi >"$OUT_DIR/nvidia-smi.txt" 2>&1 || rc=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
        >>"$OUT_DIR/nvidia-smi.txt" 2>&1 || true  # older drivers lack compute_cap
    "$PY" -c 'import cupy; cupy.show_config()' >"$OUT_DIR/cupy-config.txt" 2>&1 || rc=1
    "$PY" - <<'EOF' || rc=1
import sys
import cupy
import numpy
rt = cupy.cuda.runtime
name = rt.getDeviceProperties(0)["name"]
print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, cupy {cupy.__version__}, "
      f"CUDA runtime {rt.runtimeGetVersion()}, driver {rt.driverGetVersion()}, GPU 0: "
      f"{name.decode() if isinstance(name, bytes) else name}")
EOF
    if command -v git >/dev/null 2>&1 && git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
        echo "gradflow commit $(git -C "$ROOT" rev-parse HEAD)" \
            "($(git -C "$ROOT" status --porcelain | wc -l) changed files)"
    fi
    cat "$OUT_DIR/nvidia-smi.txt"
    return "$rc"
}

# shellcheck disable=SC2317
stage_mnist() {  # stage_mnist DEVICE DIR EPOCHS_FIRST [EPOCHS_RESUMED]
    local device=$1 dir=$2 first=$3 resumed=${4:-}
    local data=(--dataset mnist-sample) root=()
    if [ -n "$MNIST_ROOT" ]; then
        data=(--dataset mnist --data-root "$MNIST_ROOT")
        root=(--data-root "$MNIST_ROOT")
    fi
    "$PY" examples/train_mnist.py --device "$device" --epochs "$first" --out "$dir" \
        "${data[@]}" || return
    [ -n "$resumed" ] || return 0
    echo "--- resumed from $dir/checkpoint.gf"
    "$PY" examples/train_mnist.py --device "$device" --epochs "$resumed" \
        --resume "$dir/checkpoint.gf" ${root[@]+"${root[@]}"}
}
export -f stage_versions stage_mnist

drop_checkpoints() {  # the checkpoints are large and prove nothing the logs do not
    [ "${GPU_PROOF_KEEP_CHECKPOINTS:-0}" = 1 ] || rm -f "$OUT_DIR/$1/checkpoint.gf"
}

# --- the stages ----------------------------------------------------------------------------------
echo "gpu-proof: $gpu_line; output in $OUT_DIR; budget ${BUDGET_S}s;" \
    "at most ${GRADFLOW_TEST_TIMEOUT}s per test; stages: $STAGES"
rm -f "$OUT_DIR"/tests-*.xml "$SUMMARY"  # a stale result must not pass for this run's

if selected versions; then
    run_stage versions 60 bash -c stage_versions
    finish versions "$(grep -m1 '^python ' "$OUT_DIR/versions.log" 2>/dev/null)"
fi

if selected tests-cuda; then
    # Without GRADFLOW_MNIST_DIR: the full-MNIST accuracy test takes minutes; mnist-gpu trains
    # on those files instead.
    run_stage tests-cuda 330 env -u GRADFLOW_MNIST_DIR GRADFLOW_DEVICE=cuda \
        "$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT_DIR/tests-cuda.xml" tests
    finish tests-cuda "$(junit_counts "$OUT_DIR/tests-cuda.xml")"
fi

if selected tests-cuda-only; then
    run_stage tests-cuda-only 150 env -u GRADFLOW_DEVICE -u GRADFLOW_MNIST_DIR \
        "$PY" -m pytest -q -p no:cacheprovider -k cuda \
        --junitxml="$OUT_DIR/tests-cuda-only.xml" tests
    finish tests-cuda-only "$(junit_counts "$OUT_DIR/tests-cuda-only.xml")"
fi

if selected mnist-gpu; then
    run_stage mnist-gpu 180 bash -c 'stage_mnist "$@"' stage_mnist cuda "$OUT_DIR/mnist-gpu" 1 2
    detail="$MNIST_DESC: $(epoch_lines "$OUT_DIR/mnist-gpu.log")"
    if [ "$STAGE_RC" -eq 0 ] && ! grep -q 'resumed after epoch 1' "$OUT_DIR/mnist-gpu.log"; then
        STAGE_RC=1
        detail="the resumed run did not continue from epoch 1; $detail"
    fi
    finish mnist-gpu "$detail"
    drop_checkpoints mnist-gpu
fi

if selected memory-pool; then
    run_stage memory-pool 150 "$PY" scripts/pool_after_steps.py --device cuda --steps 1000 \
        --at 10,100,1000 --json "$OUT_DIR/memory-pool.json"
    finish memory-pool "$(grep -E '^(PASS|FAIL): ' "$OUT_DIR/memory-pool.log" | tail -n 1)"
fi

BENCH_NOTES=""
if selected bench; then
    # Three timing rounds instead of quick mode's seven: the same sizes in half the time.
    run_stage bench 240 "$PY" -m gradflow.bench --mode quick --rounds 3 --out "$OUT_DIR/bench"
    detail="$(grep -m1 -E '^wrote .*\.json' "$OUT_DIR/bench.log")"
    # Without a GPU column the report still passes, on the CPU alone: not a proof.
    if [ "$STAGE_RC" -eq 0 ] && ! grep -qE '^  [^ ].*  cuda(:[0-9]+)? +[0-9]' \
            "$OUT_DIR/bench.log"; then
        STAGE_RC=1
        detail="no GPU rows in the report; $detail"
    fi
    finish bench "$detail"
    # The GPU rows of the bench's targets and its peak-memory lines, for the summary.
    BENCH_NOTES="$(grep -E '^  \[.*\] GPU |^  [a-z]+/cuda' "$OUT_DIR/bench.log" 2>/dev/null)"
fi

if selected nccl; then
    # Optional: NCCL and mpi4py may be missing on the GPU machine (the script then says NOT RUN).
    run_stage nccl 60 env GRADFLOW_DEVICE=cuda "$PY" scripts/nccl_one_gpu.py
    finish nccl "$(grep -E '^(PASS|FAIL|NOT RUN)' "$OUT_DIR/nccl.log" | head -n 1)" optional
fi

if selected mnist-cpu; then
    # Optional: only with the time that is left, and never failing the run.
    run_stage mnist-cpu 150 bash -c 'stage_mnist "$@"' stage_mnist cpu "$OUT_DIR/mnist-cpu" 1
    finish mnist-cpu "$MNIST_DESC: $(epoch_lines "$OUT_DIR/mnist-cpu.log")" optional
    drop_checkpoints mnist-cpu
fi

# --- the summary ---------------------------------------------------------------------------------
{
    echo "gradflow GPU proof: $gpu_line; $(date -u '+%Y-%m-%d %H:%M UTC'); ${SECONDS}s in all"
    for i in "${!NAMES[@]}"; do
        printf '%-8s %-16s %s\n' "${STATUSES[$i]}" "${NAMES[$i]}" "${DETAILS[$i]}"
    done
    if [ "$FAILED" -eq 0 ]; then
        echo "RESULT: PASS (every required stage run passed)"
    else
        echo "RESULT: FAIL (see the stages above and their logs in $OUT_DIR)"
    fi
    if [ -n "$BENCH_NOTES" ]; then
        echo "benchmark, GPU targets and peak memory (measured, not asserted):"
        echo "$BENCH_NOTES"
    fi
} >"$SUMMARY"
echo
cat "$SUMMARY"
exit "$FAILED"
