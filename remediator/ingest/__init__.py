"""Ingest adapters: a sender's request body -> a list of normalized Alerts, or IngestError."""
