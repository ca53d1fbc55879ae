"""The tree under check, what the checks have read from it, and the problems found so far."""
import json
import os


class Tree:
    def __init__(self, root):
        self.root = root           # DIST_DIR/datablox
        self.problems = []         # (file, message)
        self.definitions = {}      # (name, version) -> (definition, file)
        self.library = {}          # (name, version) -> (entry, file)
        self.driver_dirs = []      # names of drivers/* directories
        self.driver_packages = {}  # driver directory -> its packages.json list

    def problem(self, file_name, message, engage=None):
        self.problems.append((file_name, message + (" (Engage: %s)" % engage if engage else "")))

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def load_json(self, relative):
        """Parsed JSON of a tree file, or None (with a problem) if it is missing or invalid."""
        try:
            with open(self.path(relative), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            self.problem(relative, "missing")
        except (OSError, ValueError) as error:
            self.problem(relative, "not valid JSON: %s" % error)
        return None
