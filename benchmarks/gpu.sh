#!/bin/bash
# The one GPU command (issue 14): the whole test suite on a CUDA machine, then every
# benchmark with --device cuda, logs and tables to $OUT. From the repository root:
#   bash benchmarks/gpu.sh
# On the lent H200 image (torch and torchvision installed, captum and zennit not), carry
# the wheels in an ignored folder .whl/ (pip download --no-deps captum==0.9.0 zennit==...
# there) and this script installs them into /tmp/site. Budget: under 8 minutes.
set -o pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg CUBLAS_WORKSPACE_CONFIG=:4096:8
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L
python3 -c "import torch, captum; print('torch', torch.__version__, 'captum', captum.__version__, 'cuda', torch.cuda.is_available())"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" 2>&1 | grep -v -i "warn" | tee "$OUT/$name.log" | tail -30
}
step tests 240 python3 -m pytest -o addopts="" -p no:cacheprovider -q -rs -n 8 -x tests
step hvp_memory 60 python3 benchmarks/hvp.py --device cuda --memory-only
step hvp 45 python3 benchmarks/hvp.py --device cuda --quick
step solver_hvps 45 python3 benchmarks/solver_hvps.py --device cuda --quick
step smooth_hess 30 python3 benchmarks/smooth_hess.py --device cuda --quick
step taylor_cam 30 python3 benchmarks/taylor_cam.py --device cuda --quick
step integrated_hessians 30 python3 benchmarks/integrated_hessians.py --device cuda --quick
step dtd_root_check 30 python3 benchmarks/dtd_root_check.py --device cuda --quick
step token_interactions 30 python3 benchmarks/token_interactions.py --device cuda --quick
step dataset 60 bash benchmarks/gpu_dataset.sh
