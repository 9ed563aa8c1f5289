"""wave-proxy: an OCI registry proxy that appends prebuilt layers to every image it serves."""

__version__ = "0.1.0"
