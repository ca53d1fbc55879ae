"""Engage's driver package: extensions are copied in as `engage/drivers/<ext>/`."""
