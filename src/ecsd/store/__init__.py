"""Persistence: tables, transactions, migrations. Knows SQL, knows nothing about HTTP."""
