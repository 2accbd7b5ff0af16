"""Clinician lookup: serving store (SQLite or PostgreSQL), authenticated API, web page and audit trail.

See docs/serving.md. The nightly job calls `publish_run`; `risk serve` runs `create_app`.
"""

from risk.serving.publish import PublishResult, publish_run

__all__ = ["PublishResult", "publish_run"]
