"""The base class of drivers of services: resources that also start, stop and run.

Mirrors `engage/drivers/service_manager.py` `Manager`: `start`/`stop` do nothing, `is_running`
is False and `get_pid_file_path` is None unless the driver overrides them. Engage's process
monitor (its monit support) asks `get_pid_file_path()` for the pid file to watch, so a service
that keeps a pid file must override it. Python 2.7 and 3.
"""
from engage.drivers import resource_manager


class Manager(resource_manager.Manager):
    def __init__(self, metadata, package_name):
        resource_manager.Manager.__init__(self, metadata, package_name)

    def is_service(self):
        return True

    def start(self):
        pass

    def stop(self):
        pass

    def force_stop(self):
        try:
            self.stop()
            return True
        except Exception:
            return False

    def is_running(self):
        return False

    def get_pid_file_path(self):
        return None
