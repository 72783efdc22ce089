"""Write a benchmark's Markdown between its markers in a document (shared by the benchmarks)."""
from __future__ import annotations

from pathlib import Path


def write_section(path: str | Path, name: str, heading: str, text: str) -> None:
    """Replace the text between ``<!-- name: begin -->`` and ``<!-- name: end -->`` in ``path``,
    or append it under ``## heading`` when the markers are not there yet."""
    path = Path(path)
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n\n{text}\n\n{end}"
    doc = path.read_text() if path.exists() else ""
    if begin in doc and end in doc:
        i, j = doc.index(begin), doc.index(end) + len(end)
        doc = doc[:i] + block + doc[j:]
    else:
        doc = doc.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    path.write_text(doc)
