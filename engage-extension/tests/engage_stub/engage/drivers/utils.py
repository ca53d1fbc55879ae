"""Helpers for driver modules; mirrors `engage/drivers/utils.py` `get_packages_filename`."""
import os


def get_packages_filename(driver_file):
    """The `packages.json` beside a driver module (given as its `__file__`)."""
    return os.path.join(os.path.dirname(os.path.abspath(driver_file)), "packages.json")
