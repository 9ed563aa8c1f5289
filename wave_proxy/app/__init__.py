"""The proxy's aiohttp application: what joins the registry API (`server/`) and the Wave API
(`api/`), which know nothing of each other.

factory.py opens the stores and upstreams and mounts both APIs; middleware.py holds what wraps
every request; token_registry.py serves `/v2/wt/<token>/...`, a token's image through the
registry's handlers.
"""
