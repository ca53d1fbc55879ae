"""Categorizer: gives each file a MIME type, a category and, for text, an encoding.

The extension -> MIME type table comes from the `mime-types-table` file package when it is
deployed (`<home>/data/mime_types.json`), so it can be updated without releasing the block; a
built-in table keeps the block useful standalone. The file is a JSON object mapping extensions
(`".txt"` or `"txt"`, any case) to MIME types; its entries override the built-in ones.
"""

import importlib
import json
import os

from datablox_framework.block import Block, ConfigError

MIME_TYPES_ENV = "DATABLOX_MIME_TYPES"
SNIFF_SIZE = 65536

BUILTIN_MIME_TYPES = {
    ".txt": "text/plain", ".md": "text/markdown", ".rst": "text/x-rst", ".csv": "text/csv",
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".xml": "application/xml",
    ".json": "application/json", ".js": "application/javascript", ".py": "text/x-python",
    ".c": "text/x-c", ".h": "text/x-c", ".rs": "text/x-rust", ".sh": "application/x-sh",
    ".toml": "application/toml", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
    ".svg": "image/svg+xml", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg",
    ".mp4": "video/mp4", ".avi": "video/x-msvideo", ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".odt": "application/vnd.oasis.opendocument.text", ".zip": "application/zip",
    ".gz": "application/gzip", ".tgz": "application/gzip", ".bz2": "application/x-bzip2",
    ".tar": "application/x-tar", ".xz": "application/x-xz",
}

# MIME types outside text/* whose content is nevertheless text.
TEXT_APPLICATION_TYPES = {"application/xml", "application/json", "application/javascript", "application/x-sh",
                          "application/toml", "application/yaml", "image/svg+xml"}
ARCHIVE_TYPES = {"application/zip", "application/gzip", "application/x-bzip2", "application/x-tar", "application/x-xz"}
DOCUMENT_TYPES = {"application/pdf", "application/msword"}


def category_of(mime_type):
    """The coarse category of a MIME type: text, image, audio, video, archive, document or binary."""
    if mime_type.startswith("text/") or mime_type in TEXT_APPLICATION_TYPES:
        return "text"
    top = mime_type.split("/", 1)[0]
    if top in ("image", "audio", "video"):
        return top
    if mime_type in ARCHIVE_TYPES:
        return "archive"
    if mime_type in DOCUMENT_TYPES or mime_type.startswith("application/vnd.oasis.opendocument") \
            or mime_type.startswith("application/vnd.openxmlformats-officedocument"):
        return "document"
    return "binary"


def normalize_table(table, source):
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError("{}: expected a JSON object mapping extensions to MIME types".format(source))
    return dict((("" if k.startswith(".") else ".") + k.lower(), v) for k, v in table.items())


def find_table_file(config):
    """The mime_types.json to use: from config, $DATABLOX_MIME_TYPES, or the deployment home's
    data/ directory (the home from config `home`, $DATABLOX_HOME or the Engage adapter)."""
    if config.get("mime_types"):
        return config["mime_types"]
    if os.environ.get(MIME_TYPES_ENV):
        return os.environ[MIME_TYPES_ENV]
    home = config.get("home") or os.environ.get("DATABLOX_HOME")
    if not home:
        try:
            import datablox_engage_adapter
            home = datablox_engage_adapter.deployment_home()
        except ImportError:
            return None
    candidate = os.path.join(home, "data", "mime_types.json")
    return candidate if os.path.isfile(candidate) else None


class categorizer(Block):
    """Reads `path` on `input`; emits `path`, `mime_type`, `category` and `encoding` on `output`.

    The MIME type comes from the file's extension; a file with an unknown extension is sniffed
    (`text/plain` when its first bytes have no NUL, `application/octet-stream` otherwise). The
    encoding of text files is detected with `chardet` when it is installed; without it (or with
    `detect_encoding` false) `encoding` is None. `self.table_source` says which table is used.
    """

    ARGS = ("detect_encoding", "mime_types", "home")
    INPUTS = ("input",)
    OUTPUTS = ("output",)

    def on_load(self, config):
        self.table = dict(BUILTIN_MIME_TYPES)
        self.table_source = "built-in"
        table_file = find_table_file(config)
        if table_file:
            try:
                with open(table_file) as handle:
                    self.table.update(normalize_table(json.load(handle), table_file))
            except (IOError, ValueError) as error:
                raise ConfigError("block `{}`: cannot read MIME types table {}: {}".format(self.id, table_file, error))
            self.table_source = table_file
        self.chardet = None
        if self.config_value(config, "detect_encoding", True, bool):
            try:
                self.chardet = importlib.import_module("chardet")
            except ImportError:
                pass
        self.add_input("input", ["path"])
        self.add_output("output", ["path", "mime_type", "category", "encoding"])
        self.errors = []

    def classify(self, path):
        extension = os.path.splitext(path)[1].lower()
        mime_type = self.table.get(extension)
        head = None
        if mime_type is None:
            with open(path, "rb") as handle:
                head = handle.read(SNIFF_SIZE)
            mime_type = "application/octet-stream" if b"\0" in head else "text/plain"
        category = category_of(mime_type)
        encoding = None
        if category == "text" and self.chardet is not None:
            if head is None:
                with open(path, "rb") as handle:
                    head = handle.read(SNIFF_SIZE)
            encoding = self.chardet.detect(head).get("encoding") if head else None
        return {"path": path, "mime_type": mime_type, "category": category, "encoding": encoding}

    def recv_push(self, port, log):
        rows = []
        for path in log["path"]:
            try:
                rows.append(self.classify(path))
            except (IOError, OSError) as error:
                self.errors.append((path, str(error)))
        self.push_rows("output", rows)
