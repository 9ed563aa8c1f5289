"""The registry API (`/v2/...`) that pulling clients speak: handlers, blobs, Range; the app
that mounts it is wave_proxy/app."""
