"""File names of a prepared dataset folder, shared by the writer (``occau.data.prepare``, which must stay free of
torch for its worker processes) and the reader (``occau.data.prepared``), so neither imports the other for them.
The layout itself is described in ``occau.data.prepared``."""

INFO_FILE = "prepare.json"
MANIFEST_FILE = "manifest.jsonl"
FAILURES_FILE = "failures.tsv"
SUMMARY_FILE = "summary.json"
CROPS_DIR = "crops"
WORK_DIR = "work"
FORMAT_VERSION = 1
