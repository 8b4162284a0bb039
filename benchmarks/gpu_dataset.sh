#!/bin/bash
# The GPU check of explain_dataset (issue 14 item 4), from the repository root:
#   bash benchmarks/gpu_dataset.sh
# with captum (and pytest, matplotlib) importable, e.g. PYTHONPATH=/tmp/site:$PWD after
# installing wheels there (see the device notes). Logs go to $OUT (default /tmp/out):
# the CUDA and NCCL tests of tests/dataset, the docs/dataset.md torchrun script
# under NCCL, and benchmarks/dataset_scaling.py --device cuda.
set -o pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
REPO=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
echo "== tree"; git log -1 --oneline 2>/dev/null; ls captum_higher_order/dataset
nvidia-smi -L
python3 -c "import torch, captum; print('torch', torch.__version__, 'captum', captum.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
echo "== tests/dataset (CUDA tests included)"
timeout 240 python3 -m pytest -o addopts="" -p no:cacheprovider -q -rs tests/dataset 2>&1 | tee $OUT/pytest_dataset.log | tail -25
echo "== docs/dataset.md torchrun script under NCCL (1 process, 1 GPU)"
mkdir -p /tmp/glob && python3 - <<'PY'
import re
s = open("docs/dataset.md").read()
block = [b for b in re.findall(r"```python\n(.*?)```", s, re.S) if "explain_global.py" in b][0]
open("/tmp/glob/explain_global.py", "w").write(block)
PY
(cd /tmp/glob && timeout 120 torchrun --nproc_per_node=1 explain_global.py 2>&1 | grep -v Warning | tail -5) | tee $OUT/torchrun.log
echo "== benchmark"
timeout 240 python3 benchmarks/dataset_scaling.py --device cuda --repeats 3 --samples 4096 --cnn-samples 512 2>&1 | grep -v -i warn | tee $OUT/bench.log | tail -8
