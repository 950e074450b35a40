#!/usr/bin/env bash
# Download, HERE (a machine with PyPI), the wheels that benchmarks/gpu_suite.sh needs on the GPU machine and that
# its image lacks (Python 3.12, torch 2.11, lightning, einops, safetensors, pyyaml, tqdm are there; nothing can be
# fetched there). Pure-Python wheels except cffi; soundfile's wheel bundles libsndfile.
#
#   bash benchmarks/gpu_wheels.sh [DIR]            # DIR defaults to .whl (keep it out of git: .git/info/exclude)
#
# The pins are the versions taae's own tests run with (the shared dev venv); --no-deps, so each dependency that
# the image lacks is named here: jsonargparse[signatures] → docstring-parser, typeshed-client;
# vector-quantize-pytorch → einx → frozendict; soundfile → cffi → pycparser.
set -euo pipefail

DIR="${1:-.whl}"
WHEELS=(jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0 vector-quantize-pytorch==1.32.0
        einx==0.4.3 frozendict==2.5.1 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DIR" "${WHEELS[@]}"
ls -1 "$DIR"
du -sh "$DIR"
