"""Seeded, pure-stdlib generators for the datasets shipped under ``slmexp/tasks/data``."""
