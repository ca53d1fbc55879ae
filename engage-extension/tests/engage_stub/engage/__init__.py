"""A fake of the parts of Engage that Datablox drivers use, for tests only (Python 2.7 and 3).

It follows the API facts of `engage-format.md`; nothing here is copied from Engage.
"""
