"""The compact token engine for small parts: one shared arithmetic pipeline run by a program."""
