"""Cheap tasks and scripts that exercise semcom.sweep (importable by spawned workers)."""
