#!/usr/bin/env bash
# The GPU check, ready for the day a GPU is lent: builds the core against the torch found, runs
# the tests marked `device` on the device, and measures throughput and host<->device copies
# (benchmarks/gpu_check.py); meant to take under 8 minutes on a GPU (not yet timed on one).
# Runs on the CPU as well.
#
#   bash benchmarks/gpu_check.sh [--device cuda|cpu] [--quick] [--output FILE]
#
# Python: $PYTHON, else .venv/bin/python, else python3 (it must hold a CUDA build of torch for
# --device cuda). JSON: FILE, else benchmarks/results/gpu_check_<device>.json.
set -euo pipefail
device=cuda
quick=()
output=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="${2:?--device needs a value: cuda, cuda:N or cpu}"; shift 2 ;;
        --quick) quick=(--quick); shift ;;
        --output) output=(--output "$(realpath -m "${2:?--output needs a file}")"); shift 2 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (expected --device, --quick, --output)" >&2; exit 2 ;;
    esac
done
cd -P "$(dirname "${BASH_SOURCE[0]}")/.."  # the repository (FILE stays relative to the caller)
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
case "$device" in
    cpu) ;;
    cuda|cuda:*)
        "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" || {
            echo "gpu_check.sh: --device $device, but the torch of $python sees no CUDA device" >&2; exit 3; } ;;
    *) echo "gpu_check.sh: --device must be cuda, cuda:N or cpu, got '$device'" >&2; exit 2 ;;
esac
started=$(date +%s)
echo "== build ($python)"
"$python" -m pip install -q --no-build-isolation -e .
echo "== tests marked device, on $device"
SYMPROBE_TEST_DEVICE="$device" "$python" -m pytest -q -m device -p no:cacheprovider tests
echo "== throughput"
"$python" benchmarks/gpu_check.py --device "$device" ${quick[@]+"${quick[@]}"} ${output[@]+"${output[@]}"}
echo "== done in $(( $(date +%s) - started )) s"
