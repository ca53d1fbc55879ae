"""A stand-in for the parts of Engage that Datablox drivers use, for tests only (Python 2.7 and 3).

It behaves as Engage's own code does where a driver meets it (same classes, attributes and
failures), so a driver test fails where Engage would; each module names the Engage file and
function it mirrors (Engage's repository: `python_pkg/engage/...`). Written for this project from
reading Engage's source: nothing here is copied from it.
"""
