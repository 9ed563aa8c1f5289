"""Fusion client: a pure-Python FUSE mount of S3 at /fusion/s3/<bucket>/<key>.

The version is the distribution's; wave_proxy reports the same one, so a layer built by a proxy
always carries a client of the proxy's own version.
"""

__version__ = "0.1.0"
