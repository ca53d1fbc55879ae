"""Logging for drivers: `setup_engage_logger(__name__)` returns the module's logger."""
import logging


def setup_engage_logger(name):
    # Engage configures handlers itself; a driver only asks for its logger.
    return logging.getLogger(name)
