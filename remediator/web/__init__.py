"""HTTP edge: aiohttp routes and request authentication."""
