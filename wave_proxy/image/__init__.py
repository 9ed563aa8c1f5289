"""Pure image logic: digests, media types, names, layer descriptors and manifest rewriting.

Everything here takes bytes or parsed values and returns bytes or values. No I/O, no aiohttp, so
it is unit-tested on its own and reused by the server, the API and the CLI alike.
"""
