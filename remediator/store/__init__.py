"""Durable state behind the Store protocol: episodes, decisions, actions, approvals, flags.

roles/ is the protocol by role; sql.py assembles the one SQL layer from the role modules
(decisiontx, facts, decisionlog, approvals, switches, leases, prune; rows.py builds the rows a
batch writes); dialect.py is what SQLite and PostgreSQL spell differently; sqlite.py and
postgres.py keep connections, locks and transactions, *_schema.py the schema and migrations,
*_conn.py the statement runner and what each backend writes its own way.
"""
