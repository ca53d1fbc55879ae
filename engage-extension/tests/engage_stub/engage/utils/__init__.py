"""Engage's utilities used by drivers: user errors and logging."""
