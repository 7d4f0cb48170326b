"""remediator: turns alert webhooks into guarded, audited remediation actions."""

__version__ = "0.1.0"
