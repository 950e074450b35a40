"""Hub ids for :meth:`taae.codec.Codec.load`: ``"org/name"`` (or ``"org/name@revision"``) → a snapshot folder in
the Hugging Face cache.

The snapshot is found by ``huggingface_hub.snapshot_download``, the library's own resolver of its cache layout
(``<cache>/models--org--name/refs/<revision>`` → ``snapshots/<commit>/``, files linked into ``blobs/``). The cache
folder and offline mode are read from the environment at each call (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else
``~/.cache/huggingface/hub``; ``HF_HUB_OFFLINE=1``), not from the values huggingface_hub fixed at import, so that a
process can point them elsewhere. Offline, nothing is downloaded; online, a snapshot not yet cached is the
library's to download. The folder must then hold a codec taae loads: a taae export (``config.json`` +
``model.safetensors``) or a stable-codec release (``model_config.json`` + weights).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

__all__ = ["HUB_ID", "cache_dir", "is_hub_id", "offline", "resolve"]

HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")
"""``org/name`` with an optional ``@revision`` (a branch, tag or commit), as the Hub spells repository ids."""


def is_hub_id(text: str) -> bool:
    return HUB_ID.fullmatch(str(text)) is not None


def cache_dir() -> Path:
    """The hub cache huggingface_hub would use with the current environment."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def resolve(hub_id: str) -> Path:
    """The snapshot folder of ``hub_id`` (``org/name[@revision]``), checked to hold a codec.

    Raises:
        FileNotFoundError: the id is not in the cache (offline) or not on the Hub, in one line naming both.
        ValueError: the snapshot holds no taae export and no stable-codec release.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    match = HUB_ID.fullmatch(hub_id)
    if match is None:
        raise ValueError(f"{hub_id!r} is not a hub id (org/name or org/name@revision)")
    repo, revision = match["repo"], match["revision"]
    cache, local_only = cache_dir(), offline()
    try:
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=local_only))
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as err:
        where = "HF_HUB_OFFLINE=1, nothing downloaded" if local_only else f"{type(err).__name__}"
        raise FileNotFoundError(f"hub id {hub_id!r} not found in the Hugging Face cache {cache} ({where})") from err
    check_codec_folder(folder, hub_id)
    return folder


def check_codec_folder(folder: Path, hub_id: str) -> None:
    """Raise ``ValueError`` unless ``folder`` holds a taae export or a stable-codec release."""
    from taae.interop.stable_codec import CONFIG_FILE
    from taae.io.export import CONFIG_NAME, EXPORT_FORMAT, WEIGHTS_NAME

    if (folder / CONFIG_FILE).is_file():
        return
    config = folder / CONFIG_NAME
    if config.is_file() and (folder / WEIGHTS_NAME).is_file():
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("format") == EXPORT_FORMAT:
                return
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            pass
    files = sorted(p.name for p in folder.iterdir())[:8]
    raise ValueError(f"hub id {hub_id!r} ({folder}) is not a codec taae loads: it holds neither a taae export "
                     f"({CONFIG_NAME} of format {EXPORT_FORMAT!r} + {WEIGHTS_NAME}) nor a stable-codec release "
                     f"({CONFIG_FILE}); files: {files}")
