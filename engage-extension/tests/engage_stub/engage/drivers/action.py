"""Actions: small steps a driver runs through a `Context` (`ctx.r(action, *args)`).

An action is a class built from a function by `@make_action`; when run, its `self.ctx` is the
context. With `dry_run=True` the context logs the actions instead of running them.
"""
import os

from engage.utils.user_error import EngageErrInf, UserError

try:
    _text_types = (unicode, str)  # noqa: F821 (Python 2)
except NameError:
    _text_types = (str,)

ERR_PORT_MISSING = 1
ERR_PROPERTY_MISSING = 2
ERR_PROPERTY_TYPE = 3
ERR_NOT_INSTALLABLE = 4
ERR_NOT_A_DIR = 5
ERR_EXTRACT_TARGET_EXISTS = 6

_errors = {
    ERR_PORT_MISSING: EngageErrInf(__name__, ERR_PORT_MISSING,
                                   "resource %(id)s has no port %(port)s"),
    ERR_PROPERTY_MISSING: EngageErrInf(__name__, ERR_PROPERTY_MISSING,
                                       "resource %(id)s: port %(port)s has no property %(prop)s"),
    ERR_PROPERTY_TYPE: EngageErrInf(__name__, ERR_PROPERTY_TYPE,
                                    "resource %(id)s: property %(port)s.%(prop)s is %(actual)s, expected %(expected)s"),
    ERR_NOT_INSTALLABLE: EngageErrInf(__name__, ERR_NOT_INSTALLABLE,
                                      "cannot install to %(dir)s: %(why)s"),
    ERR_NOT_A_DIR: EngageErrInf(__name__, ERR_NOT_A_DIR, "directory %(dir)s does not exist"),
    ERR_EXTRACT_TARGET_EXISTS: EngageErrInf(__name__, ERR_EXTRACT_TARGET_EXISTS,
                                            "cannot extract package as %(dir)s: it already exists"),
}


class _Props(object):
    """A JSON object seen by attribute: `props.input_ports.host.genforma_home`."""

    def __init__(self, value, path):
        self._value = value
        self._path = path

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._value:
            raise AttributeError("%s has no %s" % (self._path or "resource", name))
        return _wrap(self._value[name], (self._path + "." if self._path else "") + name)

    def __contains__(self, name):
        return name in self._value

    def __repr__(self):
        return "<props %s %r>" % (self._path, self._value)


def _wrap(value, path):
    return _Props(value, path) if isinstance(value, dict) else value


class Context(object):
    """The properties of one resource instance, plus the way to run actions on it."""

    def __init__(self, resource_json, logger, filepath, sudo_password_fn=None, dry_run=False):
        self.resource_json = resource_json
        self.logger = logger
        self.filepath = filepath
        self.sudo_password_fn = sudo_password_fn
        self.dry_run = dry_run
        self.props = _Props(resource_json, "")

    def check_port(self, port_name, **properties):
        """Check that `port_name` ("input_ports.host") has each property with the given type."""
        value = self.resource_json
        for part in port_name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise UserError(_errors[ERR_PORT_MISSING],
                                msg_args={"id": self.resource_json.get("id"), "port": port_name})
            value = value[part]
        for prop, expected in properties.items():
            if prop not in value:
                raise UserError(_errors[ERR_PROPERTY_MISSING],
                                msg_args={"id": self.resource_json.get("id"), "port": port_name,
                                          "prop": prop})
            if not isinstance(value[prop], expected):
                raise UserError(_errors[ERR_PROPERTY_TYPE],
                                msg_args={"id": self.resource_json.get("id"), "port": port_name,
                                          "prop": prop, "actual": type(value[prop]).__name__,
                                          "expected": expected.__name__})

    def r(self, action_class, *args, **kwargs):
        """Run an action (its result is not returned: use `rv` for that)."""
        self.rv(action_class, *args, **kwargs)

    def rv(self, action_class, *args, **kwargs):
        """Run an action and return its result (None in a dry run)."""
        action = action_class(self)
        if self.dry_run:
            self.logger.info("dry run: %s%r", action.NAME, args)
            return None
        return action.run(*args, **kwargs)


class Action(object):
    NAME = "action"

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, *args, **kwargs):
        raise NotImplementedError(self.NAME)


def make_action(function):
    """Turn `def f(self, ...)` into an action class whose `run` calls it with `self.ctx` set."""

    def run(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    # Built with type() because Python 2 cannot set a class's __doc__ after the fact.
    return type(function.__name__, (Action,),
                {"NAME": function.__name__, "__doc__": function.__doc__, "run": run})


@make_action
def check_installable_to_dir(self, dir_path):
    """The directory either exists and is writable, or can be created (its nearest ancestor is writable)."""
    if os.path.exists(dir_path):
        if not os.path.isdir(dir_path):
            raise UserError(_errors[ERR_NOT_INSTALLABLE],
                            msg_args={"dir": dir_path, "why": "it exists and is not a directory"})
        if not os.access(dir_path, os.W_OK):
            raise UserError(_errors[ERR_NOT_INSTALLABLE],
                            msg_args={"dir": dir_path, "why": "it is not writable"})
        return
    ancestor = os.path.dirname(os.path.abspath(dir_path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK):
        raise UserError(_errors[ERR_NOT_INSTALLABLE],
                        msg_args={"dir": dir_path, "why": "%s is not a writable directory" % ancestor})


@make_action
def ensure_dir_exists(self, dir_path):
    if not os.path.isdir(dir_path):
        os.makedirs(dir_path)


@make_action
def check_dir_exists(self, dir_path):
    if not os.path.isdir(dir_path):
        raise UserError(_errors[ERR_NOT_A_DIR], msg_args={"dir": dir_path})


@make_action
def extract_package_as_dir(self, package, dest_dir):
    """Extract an archive package into the parent of `dest_dir`, then rename its top directory to `dest_dir`."""
    dest_dir = os.path.abspath(dest_dir)
    if os.path.exists(dest_dir):
        raise UserError(_errors[ERR_EXTRACT_TARGET_EXISTS], msg_args={"dir": dest_dir})
    parent_dir = os.path.dirname(dest_dir)
    top_dir = package.extract(parent_dir)
    extracted = os.path.join(parent_dir, top_dir)
    if extracted != dest_dir:
        os.rename(extracted, dest_dir)
