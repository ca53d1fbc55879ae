"""Errors reported to users: `UserError(EngageErrInf(component, code, msg), msg_args={...})`.

Mirrors `engage/utils/user_error.py` (`ErrorInfo`, `EngageErrInf`, `UserError`,
`convert_exc_to_user_error`): the same attributes and the same text. Python 2.7 and 3.
"""
import traceback

AREA_ENGAGE = "Engage"


class ErrorInfo(object):
    """Mirrors `user_error.py` `ErrorInfo`: area, subarea, error code and message template."""

    def __init__(self, area, subarea, error_code, message_templ):
        self.area = area
        self.subarea = subarea
        self.error_code = error_code
        self.message_templ = message_templ


class EngageErrInf(ErrorInfo):
    """Mirrors `user_error.py` `EngageErrInf`: an error of the Engage area."""

    def __init__(self, subarea, error_code, message_templ):
        ErrorInfo.__init__(self, AREA_ENGAGE, subarea, error_code, message_templ)


class UserError(Exception):
    """Mirrors `user_error.py` `UserError`. Like Engage's, it reads `error_info.area`, so passing
    anything but an `ErrorInfo` fails (with AttributeError) where the error is raised."""

    def __init__(self, error_info, msg_args=None, developer_msg=None, context=None):
        self.area = error_info.area
        self.subarea = error_info.subarea
        self.error_code = error_info.error_code
        if msg_args is not None:
            self.user_msg = error_info.message_templ % msg_args
        else:
            self.user_msg = error_info.message_templ
        self.developer_msg = developer_msg
        self.context = context
        Exception.__init__(self, self.user_msg)

    def __str__(self):
        return "[%s][%s][%d] %s" % (self.area, self.subarea, self.error_code, self.user_msg)


def convert_exc_to_user_error(exc_info, error_info, msg_args=None, user_error_class=UserError):
    """Mirrors `user_error.py` `convert_exc_to_user_error`: the exception's class and text go to
    the developer message, its traceback to the context."""
    exc_class, exc_val, exc_tb = exc_info
    return user_error_class(error_info, msg_args,
                            developer_msg="%s: %s" % (exc_class.__name__, exc_val),
                            context=traceback.extract_tb(exc_tb))
