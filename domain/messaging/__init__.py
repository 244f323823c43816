"""Shared kernel: the transactional outbox, the inbox, the relay, and versioned contracts (DESIGN §4)."""
