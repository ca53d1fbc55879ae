"""Errors reported to users: `UserError(EngageErrInf(component, code, msg), msg_args={...})`."""


class EngageErrInf(object):
    """What an error is: the component that raises it, a code unique within it, a message format."""

    def __init__(self, component, error_code, msg_format):
        self.component = component
        self.error_code = error_code
        self.msg_format = msg_format

    def format(self, msg_args):
        if not msg_args:
            return self.msg_format
        return self.msg_format % msg_args


class UserError(Exception):
    """An error whose message is meant for the person who runs Engage."""

    def __init__(self, errinf, msg_args=None, developer_msg=None, context=None):
        if not isinstance(errinf, EngageErrInf):
            # A driver that passes a string here has a bug; say so instead of failing later.
            raise TypeError("UserError needs an EngageErrInf, got %r" % (errinf,))
        self.errinf = errinf
        self.msg_args = msg_args or {}
        self.developer_msg = developer_msg
        self.context = list(context or [])
        self.user_msg = errinf.format(self.msg_args)
        Exception.__init__(self, self.user_msg)

    def __str__(self):
        text = "%s (%s error %s)" % (self.user_msg, self.errinf.component, self.errinf.error_code)
        if self.developer_msg:
            text += ": " + self.developer_msg
        return text
