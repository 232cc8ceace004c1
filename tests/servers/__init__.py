"""Real servers the tests start on loopback (PostgreSQL), one per test session."""
