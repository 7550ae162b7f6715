"""Durable asynchronous jobs: claim, lease, heartbeat, checkpoint, resume. Knows no business rules."""
