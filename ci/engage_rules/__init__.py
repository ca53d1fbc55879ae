"""The rules of `ci/check_extension.py`, one module per concern (see that file's docstring for
which Engage code each restates); `driver_probe.py` runs inside the stub tree for `drivers.py`,
with `fake_pip.py` as pip."""
