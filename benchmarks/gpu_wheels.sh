#!/usr/bin/env bash
# Download, HERE (a machine with PyPI), the wheels that benchmarks/gpu_suite.sh needs on the GPU machine and that
# its image lacks (Python 3.12, torch 2.11, torchaudio, lightning, numpy, einops, safetensors, pyyaml, tqdm, pytest,
# triton and their own dependencies are there; nothing can be fetched there). Pure-Python wheels except cffi;
# soundfile's wheel bundles libsndfile.
#
#   bash benchmarks/gpu_wheels.sh [DIR]            # DIR defaults to .whl (keep it out of git: .git/info/exclude)
#   bash benchmarks/gpu_wheels.sh --list           # print the pinned wheels, download nothing
#
# The pins are versions taae's own tests have run with; --no-deps, so every dependency that the image lacks is named
# here (tests/benchmarks/test_gpu_wheels.py checks each wheel's Requires-Dist against this list plus the image's):
# jsonargparse[signatures] → docstring-parser, typeshed-client; vector-quantize-pytorch → einx, loguru,
# torch-einops-utils; einx → frozendict; soundfile → cffi → pycparser.
set -euo pipefail

WHEELS=(jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0 vector-quantize-pytorch==1.32.0
        einx==0.4.3 frozendict==2.5.1 loguru==0.7.3 torch-einops-utils==0.2.0 soundfile==0.14.0 cffi==2.1.1
        pycparser==3.12)
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${WHEELS[@]}"
  exit 0
fi
DIR="${1:-.whl}"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DIR" "${WHEELS[@]}"
ls -1 "$DIR"
du -sh "$DIR"
