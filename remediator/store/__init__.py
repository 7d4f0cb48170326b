"""Durable state behind the Store protocol: episodes, decisions, actions, approvals, flags.

base.py is the protocol by role; sql.py assembles the one SQL layer from the role modules
(decisionlog, approvals, switches, leases, prune); dialect.py is what SQLite and PostgreSQL
spell differently; sqlite.py and postgres.py keep connections, schema and locks.
"""
