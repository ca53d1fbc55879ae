"""Logging for drivers: `setup_engage_logger(__name__)` returns the module's logger.

Mirrors `engage/utils/log_setup.py` `setup_engage_logger`: a proxy of the logger `Engage.<name>`
that adds Engage's extra `action` level, between info and debug. Python 2.7 and 3.
"""
import logging

ACTION = 15


class LogProxy(object):
    """Mirrors `log_setup.py` `LogProxy`: delegates to a logger and adds `action(msg)`."""

    def __init__(self, logger):
        self._logger = logger

    def __getattr__(self, name):
        return getattr(self._logger, name)

    def action(self, msg):
        self._logger.log(ACTION, msg)


def setup_engage_logger(subarea):
    # Engage configures handlers itself; a driver only asks for its logger.
    return LogProxy(logging.getLogger("Engage.%s" % subarea))
