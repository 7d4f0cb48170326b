"""The store's interface by role (decisionlog, approvals, leases) and the Store composed of them
(store.py): Protocols, their records and their errors, never a statement or any I/O."""
