#!/usr/bin/env bash
# Build the official reference environments, OUTSIDE the repository and never part of taae's install or CI run:
#
#   sat20/  descript-audio-codec 1.0.0 + stable-audio-tools 0.0.20
#           (DAC parity; SAT 0.0.20 has a real windowed-attention fallback on CPU)
#   sat17/  stable-audio-tools 0.0.17 + stable-codec 0.1.2
#           (the versions the released stable-codec weights and token IDs were made with; without flash-attn,
#           SAT 0.0.17 runs FULL attention where the model asks for a sliding window)
#
# Usage:
#   bash scripts/official_env.sh [ROOT]        # ROOT defaults to $TAAE_OFFICIAL_VENVS, else /work/venvs
#   ROOT/sat20/bin/python scripts/make_interop_fixtures.py ...
#
# Idempotent: each venv is checked by importing its packages and comparing a stamp of the recipe below; a venv
# that passes is left alone. One whose recipe changed or whose check fails is updated IN PLACE (pip install of the
# recipe; a venv is created only where none exists): a failing check never deletes a working venv. Delete ROOT/NAME
# yourself for a clean rebuild. Nothing here downloads model weights. Set PYTHON to choose the interpreter (default
# python3; the recipe is tested with 3.11).
#
# Why the pins (all measured beside torch 2.14.1 on Python 3.11):
# - stable-audio-tools 0.0.20 declares Requires-Python <3.11 and pins torch 2.7.1; stable-codec 0.1.2 pins
#   torch 2.4 and SAT 0.0.17, whose pypesq dependency does not build. Both go in with --no-deps plus the
#   runtime dependencies they really import, and a constraint keeps torch where it is.
# - PyWavelets: SAT's pin 1.4.1 is built for numpy<2; the latest release works.
# - sat17: numpy<2 (wandb 0.15.4 uses np.float_), setuptools<81 (lightning_fabric 2.1 imports pkg_resources).
# - descript-audio-codec downgrades protobuf (descript-audiotools pin): one more reason for a separate venv.
#   descript-audiotools is named explicitly (and wheel, which its sdist dependencies need to build).
# - sat17 also runs stable-codec's training wrapper (stable_codec/training_module.py, for the trainer-written
#   checkpoint fixture): ema-pytorch==0.2.3 (SAT 0.0.17's pin; later versions need newer torch APIs and change the
#   EMA's state keys), auraloss==0.4.0 (SAT's pin), descript-audiotools (SAT's semantic losses import audiotools),
#   sentry-sdk<2 (wandb 0.15.4, imported by SAT's training utils, breaks with sentry-sdk 2). SAT's metrics import
#   pypesq, which does not build: the fixture generator stubs that module (PESQ is an evaluation metric only).
set -euo pipefail

ROOT="${1:-${TAAE_OFFICIAL_VENVS:-/work/venvs}}"
PYTHON="${PYTHON:-python3}"
TORCH_PINS=(torch==2.14.1 torchaudio==2.11.0)

SAT20_PKGS=(wheel descript-audiotools descript-audio-codec==1.0.0 safetensors huggingface_hub alias-free-torch==0.0.6
            torchsde einops-exts PyWavelets pytorch_lightning)
SAT20_NODEPS=(stable-audio-tools==0.0.20)
SAT20_CHECK='import audiotools, dac, stable_audio_tools.models.autoencoders, stable_audio_tools.models.factory'

SAT17_PKGS=("numpy<2" "setuptools<81" einops safetensors huggingface_hub pytorch-lightning==2.1.0 matplotlib
            wandb==0.15.4 "sentry-sdk<2" alias-free-torch==0.0.6 einops-exts k-diffusion==0.1.1 wheel
            ema-pytorch==0.2.3 auraloss==0.4.0 descript-audiotools)
SAT17_NODEPS=(stable-audio-tools==0.0.17 stable-codec==0.1.2)
# pypesq (SAT's metrics) does not build; stubbed as the fixture generator does
SAT17_CHECK='import sys, types; sys.modules.setdefault("pypesq", types.ModuleType("pypesq")).pesq = None
import ema_pytorch, stable_codec, stable_codec.training_module, stable_audio_tools.models.factory'

log() { printf '[official_env] %s\n' "$*" >&2; }

# build NAME CHECK PKGS... -- NODEPS...
build() {
  local name="$1" check="$2"; shift 2
  local pkgs=() nodeps=() seen_sep=0
  for arg in "$@"; do
    if [[ "$arg" == "--" ]]; then seen_sep=1; continue; fi
    if (( seen_sep )); then nodeps+=("$arg"); else pkgs+=("$arg"); fi
  done
  local venv="$ROOT/$name"
  local recipe="torch: ${TORCH_PINS[*]} | pkgs: ${pkgs[*]} | no-deps: ${nodeps[*]}"
  if [[ -f "$venv/.taae-recipe" && "$(cat "$venv/.taae-recipe")" == "$recipe" ]] \
      && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    log "$name: up to date ($venv)"
    return 0
  fi
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import sys" >/dev/null 2>&1; then
    log "$name: updating in place ($venv)"
  else
    log "$name: creating $venv"
    "$PYTHON" -m venv "$venv"
  fi
  local pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
  local constraint="$venv/taae-constraints.txt"
  printf '%s\n' "${TORCH_PINS[@]}" > "$constraint"
  "${pip[@]}" "${TORCH_PINS[@]}"
  "${pip[@]}" -c "$constraint" "${pkgs[@]}"
  "${pip[@]}" --no-deps --ignore-requires-python "${nodeps[@]}"
  "$venv/bin/python" -c "$check" >/dev/null 2>&1 || {
    log "$name: import check failed (venv kept as is; fix the recipe): $check"; "$venv/bin/python" -c "$check"
    exit 1; }
  "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('2.14.1'), torch.__version__"
  printf '%s' "$recipe" > "$venv/.taae-recipe"
  log "$name: ready ($venv)"
}

mkdir -p "$ROOT"
build sat20 "$SAT20_CHECK" "${SAT20_PKGS[@]}" -- "${SAT20_NODEPS[@]}"
build sat17 "$SAT17_CHECK" "${SAT17_PKGS[@]}" -- "${SAT17_NODEPS[@]}"
log "done: $ROOT/sat20/bin/python (DAC 1.0.0, SAT 0.0.20), $ROOT/sat17/bin/python (SAT 0.0.17, stable-codec 0.1.2)"
