"""Deferrable triggers: they wait in the triggerer without holding a worker slot."""
