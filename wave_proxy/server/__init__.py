"""The aiohttp application serving the registry API (`/v2/...`) to pulling clients."""
