"""Durable state behind the Store protocol: episodes, decisions, actions, approvals, flags."""
