"""taae: transformer audio codecs for low-bitrate speech.

``from taae import Codec`` is the inference API (:mod:`taae.codec`); it is imported on first use so that light
entry points such as ``python -m taae.data.demo`` do not load the models.
"""

__version__ = "0.1.0"
__all__ = ["Codec", "__version__"]


def __getattr__(name: str):
    if name == "Codec":
        from taae.codec import Codec

        return Codec
    raise AttributeError(f"module 'taae' has no attribute {name!r}")
