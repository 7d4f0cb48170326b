"""The pure core: decisions over plain data, with the clock passed in. No I/O here."""
