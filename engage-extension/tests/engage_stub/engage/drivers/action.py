"""Actions: small steps a driver runs through a `Context` (`ctx.r(action, *args)`).

Mirrors `engage/drivers/action.py` of Engage (Python 2.7), written for our tests: the same names,
the same checks and the same failures, so that a driver that passes here does not fail there.
What each piece mirrors is named beside it. Python 2.7 and 3.
"""
import os
import shutil
import sys

from engage.utils.user_error import EngageErrInf, UserError, convert_exc_to_user_error

try:
    _text_types = (unicode, str)  # noqa: F821 (Python 2)
except NameError:
    _text_types = (str,)

# Error codes and texts of Engage's `action.py` (`define_error` calls), for the errors drivers meet.
ERR_DIR_NOT_FOUND = 1
ERR_UNEXPECTED_EXC_IN_ACTION = 4
ERR_PROP_NOT_FOUND = 5
ERR_PROP_TYPE_NOT_STR = 6
ERR_PROP_TYPE_NOMATCH = 7
ERR_MISSING_ID_PROP = 8
ERR_INSTDIR_NOT_WRITABLE = 9
ERR_INSTDIR_ALREADY_EXISTS = 10

errors = {
    ERR_DIR_NOT_FOUND: EngageErrInf(
        __name__, ERR_DIR_NOT_FOUND, "Required directory '%(dirpath)s' not found for resource %(resid)s"),
    ERR_UNEXPECTED_EXC_IN_ACTION: EngageErrInf(
        __name__, ERR_UNEXPECTED_EXC_IN_ACTION,
        "Unexpected exception '%(exc)s' in resource '%(id)s' action: %(action)s"),
    ERR_PROP_NOT_FOUND: EngageErrInf(
        __name__, ERR_PROP_NOT_FOUND, "Resource '%(id)s' missing required property '%(name)s'"),
    ERR_PROP_TYPE_NOT_STR: EngageErrInf(
        __name__, ERR_PROP_TYPE_NOT_STR,
        "Property '%(name)s' of resource '%(id)s' has wrong type: expecting str or unicode, got '%(type)s'"),
    ERR_PROP_TYPE_NOMATCH: EngageErrInf(
        __name__, ERR_PROP_TYPE_NOMATCH,
        "Property '%(name)s' of resource '%(id)s' has wrong type: expecting '%(exptype)s', got '%(type)s'"),
    ERR_MISSING_ID_PROP: EngageErrInf(
        __name__, ERR_MISSING_ID_PROP, "Resource context missing required property 'id'"),
    ERR_INSTDIR_NOT_WRITABLE: EngageErrInf(
        __name__, ERR_INSTDIR_NOT_WRITABLE,
        "Installation parent directory '%(dir)s' is not writable for resource '%(id)s'"),
    ERR_INSTDIR_ALREADY_EXISTS: EngageErrInf(
        __name__, ERR_INSTDIR_ALREADY_EXISTS,
        "Installation directory '%(dir)s' already exists for resource '%(id)s'"),
}


def _dir_path_is_writable(dir_path):
    """Mirrors `engage/utils/path.py` `dir_path_is_writable`: the nearest existing ancestor
    (or the path itself) is a writable directory."""
    previous = None
    path = dir_path
    while path != previous:
        if os.path.isdir(path):
            return os.access(path, os.W_OK)
        previous = path
        path = os.path.dirname(path)
    return False


def _flatten(value, prefix, into):
    """The `substitutions` map of Engage's `Context` (`_Config._make_flattened_map`): one entry per
    leaf, named by its dotted path; a nested object is not an entry of its own."""
    for name, child in value.items():
        qualified = prefix + "." + name if prefix else name
        if isinstance(child, dict):
            _flatten(child, qualified, into)
        elif isinstance(child, list):
            into[qualified] = repr(child)
        else:
            into[qualified] = child


class _Config(object):
    """Mirrors `action.py` `_Config`: a JSON object read by attribute, read-only."""

    def __init__(self, props, qualified_name=None):
        wrapped = {}
        for name, value in props.items():
            wrapped[name] = self._wrap(name, value, qualified_name)
        self.__dict__["_props"] = wrapped
        self.__dict__["_qualified_name"] = qualified_name

    @staticmethod
    def _wrap(name, value, parent):
        qualified = parent + "." + name if parent else name
        if isinstance(value, dict):
            return _Config(value, qualified)
        if isinstance(value, list):
            return [_Config._wrap("%s[%d]" % (name, index), item, parent) for index, item in enumerate(value)]
        return value

    def _get(self, qualified_name):
        first, _, rest = qualified_name.partition(".")
        if first in self._props and not rest:
            return self._props[first]
        if first in self._props and isinstance(self._props[first], _Config):
            return self._props[first]._get(rest)
        raise AttributeError("Property '%s' not found" % qualified_name)

    def __getattr__(self, name):
        if name in self._props:
            return self._props[name]
        raise AttributeError("%s not an attribute" % name)

    def __setattr__(self, name, value):
        raise AttributeError("Error in setting attribute '%s': Configuration objects are read-only" % name)

    def __repr__(self):
        return repr(self._props)


class Context(object):
    """Mirrors `action.py` `Context`: the instance's properties plus the way to run actions."""

    def __init__(self, resource_config_props, logger, filepath, sudo_password_fn=None, dry_run=False):
        self.props = _Config(resource_config_props)
        self.logger = logger
        # Engage's loggers have an `action` level; a plain logger gets it mapped to debug.
        if not hasattr(self.logger, "action"):
            self.logger.action = self.logger.debug
        self.filepath = os.path.abspath(os.path.expanduser(filepath))
        self.sudo_password_fn = sudo_password_fn
        self.dry_run = dry_run
        self.substitutions = {}
        _flatten(resource_config_props, "", self.substitutions)
        if "id" not in self.substitutions:
            raise UserError(errors[ERR_MISSING_ID_PROP])

    def checkp(self, qualified_prop_name, typ=None):
        """Mirrors `Context.checkp`: the property is a leaf of the instance, a string unless `typ`."""
        if qualified_prop_name not in self.substitutions:
            raise UserError(errors[ERR_PROP_NOT_FOUND], msg_args={"id": self.props.id, "name": qualified_prop_name})
        value = self.props._get(qualified_prop_name)
        if typ is None and not isinstance(value, _text_types):
            raise UserError(errors[ERR_PROP_TYPE_NOT_STR],
                            msg_args={"id": self.props.id, "name": qualified_prop_name,
                                      "type": type(value).__name__})
        if typ is not None and not isinstance(value, typ):
            raise UserError(errors[ERR_PROP_TYPE_NOMATCH],
                            msg_args={"id": self.props.id, "name": qualified_prop_name,
                                      "type": type(value).__name__, "exptype": typ.__name__})
        return self

    def check_port(self, port_name, **properties):
        """Mirrors `Context.check_port`: a text type accepts `str` or `unicode` alike."""
        for prop, typ in properties.items():
            if typ in _text_types:
                self.checkp(port_name + "." + prop)
            else:
                self.checkp(port_name + "." + prop, typ=typ)
        return self

    def _run(self, action, base, args, kwargs):
        assert isinstance(action, base), \
            "passed an action of type %s, not an instance of %s" % (type(action).__name__, base.__name__)
        described = "%s %s" % (action.NAME, " ".join(str(arg) for arg in args))
        self.logger.action(described)
        try:
            if self.dry_run:
                return action.dry_run(*args, **kwargs)
            return action.run(*args, **kwargs)
        except UserError:
            raise
        except Exception as error:
            # As Engage does: any other exception of an action becomes a UserError.
            raise convert_exc_to_user_error(sys.exc_info(), errors[ERR_UNEXPECTED_EXC_IN_ACTION],
                                            msg_args={"exc": repr(error), "action": described,
                                                      "id": self.props.id})

    def r(self, action_class, *args, **kwargs):
        """Mirrors `Context.r`: runs an `Action` (not a `ValueAction`) and returns the context."""
        self._run(action_class(self), Action, args, kwargs)
        return self

    def rv(self, value_action_class, *args, **kwargs):
        """Mirrors `Context.rv`: runs a `ValueAction` and returns its value."""
        return self._run(value_action_class(self), ValueAction, args, kwargs)


class Action(object):
    """Mirrors `action.py` `Action`: run for its side effects; `run` returns nothing useful."""
    NAME = "action"

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, *args, **kwargs):
        pass

    def dry_run(self, *args, **kwargs):
        pass


class ValueAction(object):
    """Mirrors `action.py` `ValueAction` (not a subclass of `Action`, as in Engage)."""
    NAME = "value_action"

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, *args, **kwargs):
        pass

    def dry_run(self, *args, **kwargs):
        pass


def make_action(function):
    """Mirrors `action.py` `make_action`: `def f(self, ...)` becomes an `Action`; its value is dropped."""

    def run(self, *args, **kwargs):
        function(self, *args, **kwargs)

    # Built with type() because Python 2 cannot set a class's __doc__ after the fact.
    return type(function.__name__, (Action,),
                {"NAME": function.__name__, "__doc__": function.__doc__, "run": run})


def make_value_action(function):
    """Mirrors `action.py` `make_value_action`: `def f(self, ...)` becomes a `ValueAction`."""

    def run(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    return type(function.__name__, (ValueAction,),
                {"NAME": function.__name__, "__doc__": function.__doc__, "run": run})


class check_installable_to_dir(Action):
    """Mirrors `action.py` `check_installable_to_dir`: the parent of `install_dir` is writable (or
    can be created) and `install_dir` does NOT exist yet. A directory that exists is refused."""
    NAME = "check_installable_to_dir"

    def run(self, install_dir):
        parent_dir = os.path.dirname(install_dir)
        if not _dir_path_is_writable(parent_dir):
            raise UserError(errors[ERR_INSTDIR_NOT_WRITABLE], msg_args={"dir": parent_dir, "id": self.ctx.props.id})
        if os.path.exists(install_dir):
            raise UserError(errors[ERR_INSTDIR_ALREADY_EXISTS], msg_args={"dir": install_dir, "id": self.ctx.props.id})

    def dry_run(self, install_dir):
        if os.path.exists(install_dir):
            self.ctx.logger.warning("install directory '%s' already exists" % install_dir)


class check_dir_exists(Action):
    """Mirrors `action.py` `check_dir_exists`."""
    NAME = "check_dir_exists"

    def run(self, dir_path):
        if not os.path.isdir(dir_path):
            raise UserError(errors[ERR_DIR_NOT_FOUND], msg_args={"dirpath": dir_path, "resid": self.ctx.props.id})

    def dry_run(self, dir_path):
        if not os.path.isdir(dir_path):
            self.ctx.logger.warning("Directory '%s' does not exist" % dir_path)


@make_action
def ensure_dir_exists(self, dir_path):
    """Mirrors `action.py` `ensure_dir_exists`."""
    if not os.path.exists(dir_path):
        os.makedirs(dir_path)


@make_action
def extract_package_as_dir(self, package, desired_extract_path):
    """Mirrors `action.py` `extract_package_as_dir`: extract into the parent, then move the top
    directory to `desired_extract_path` when its name differs."""
    parent_dir = os.path.dirname(desired_extract_path)
    desired_dirname = os.path.basename(desired_extract_path)
    extracted_dir = package.extract(parent_dir)
    if extracted_dir != desired_dirname:
        shutil.move(os.path.join(parent_dir, extracted_dir), desired_extract_path)
