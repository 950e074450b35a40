"""benchmarks/gpu_wheels.sh carries every wheel the GPU suite needs beyond the GPU image's own packages.

The image (Python 3.12, no network) has the packages in ``IMAGE`` and whatever they require; the script downloads
the rest with ``--no-deps``, so a dependency it forgets is missing there. Requirements are read from this
environment's installed metadata (the same versions, or the pins' neighbours) and evaluated for Linux, CPython 3.12.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ("torch", "torchaudio", "lightning", "numpy", "einops", "safetensors", "pyyaml", "tqdm", "pytest", "triton")
"""What the GPU machine's image has (the device notes: Python 3.12, torch 2.11, Lightning preinstalled)."""
MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def carried() -> dict[str, str]:
    """{canonical name: pinned version} as ``gpu_wheels.sh --list`` prints them."""
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_wheels.sh"), "--list"], capture_output=True,
                         text=True, check=True).stdout.split()
    return {canonicalize_name(pin.split("==")[0]): pin.split("==")[1] for pin in out}


def extras_of_taae() -> dict[str, set[str]]:
    """The extras taae's own dependencies ask for (``jsonargparse[signatures]``)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(r.name): set(r.extras) for r in map(Requirement, deps)}


def requires(dist: str, extras: set[str] = frozenset()) -> list[str]:
    """Canonical names of what ``dist`` requires on the GPU machine (with ``extras``); ``[]`` if not installed."""
    try:
        lines = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for req in map(Requirement, lines):
        if req.marker is None or any(req.marker.evaluate({**MARKERS, "extra": e}) for e in (extras or {""})):
            names.append(canonicalize_name(req.name))
    return names


def installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def image_packages() -> set[str]:
    """``IMAGE`` and everything it requires, transitively."""
    seen, todo = set(), [canonicalize_name(n) for n in IMAGE]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += requires(name)
    return seen


def test_every_carried_wheel_has_its_dependencies_there():
    wheels, image, extras = carried(), image_packages(), extras_of_taae()
    absent = [name for name in wheels if not installed(name)]
    if absent:
        pytest.skip(f"not installed here, so their requirements cannot be read: {absent}")
    missing = {name: sorted(set(requires(name, extras.get(name, set()))) - image - set(wheels)) for name in wheels}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"benchmarks/gpu_wheels.sh: these wheels need packages neither carried nor in the image: " \
                        f"{missing}"


def test_list_mode_downloads_nothing(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_wheels.sh"), "--list"], capture_output=True,
                          text=True, cwd=tmp_path, check=True)
    assert "vector-quantize-pytorch==" in proc.stdout and not list(tmp_path.iterdir())


if __name__ == "__main__":  # pragma: no cover - a quick look from the command line
    print(sorted(image_packages()), carried(), file=sys.stderr)
