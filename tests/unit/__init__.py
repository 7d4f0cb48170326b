"""Unit tests of the pure core: no sockets, no event loop, clock passed in."""
