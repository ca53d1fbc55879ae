"""The base class of drivers of services: resources that also start, stop and run."""
from engage.drivers import resource_manager


class Manager(resource_manager.Manager):
    def is_service(self):
        return True

    def start(self):
        raise NotImplementedError("%s.start" % type(self).__name__)

    def stop(self):
        raise NotImplementedError("%s.stop" % type(self).__name__)

    def is_running(self):
        raise NotImplementedError("%s.is_running" % type(self).__name__)
