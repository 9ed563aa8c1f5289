"""wave-proxy: an OCI registry proxy that appends prebuilt layers to every image it serves."""

from fusion_client import __version__

__all__ = ["__version__"]
