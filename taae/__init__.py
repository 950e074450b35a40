"""taae: transformer audio codecs for low-bitrate speech."""

__version__ = "0.1.0"

