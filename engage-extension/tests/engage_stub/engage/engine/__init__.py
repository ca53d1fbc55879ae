"""Engage's engine: here only the library's package classes (`library.py`)."""
