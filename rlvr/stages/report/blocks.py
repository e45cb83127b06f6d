"""The report's content as typed blocks, and its two renderings: Markdown and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Items:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    file: str  # beside the report
    caption: str


Block = Heading | Paragraph | Items | Table | Figure


def markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        match block:
            case Heading(text, level):
                lines += ["#" * level + " " + text, ""]
            case Paragraph(text):
                lines += [text, ""]
            case Items(items):
                lines += [f"- {item}" for item in items] + [""]
            case Table(header, rows):
                lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
            case Figure(file, caption):
                lines += [f"![{caption}]({file})", ""]
    return "\n".join(lines)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}figure{margin:1.5em 0}"
    "img{max-width:100%}figcaption{color:#555;font-size:.9em}"
)


def html_page(blocks: list[Block], out_dir: Path, title: str) -> str:
    """A self-contained page: styles inline, figures embedded as data URIs, no scripts."""
    body = []
    for block in blocks:
        match block:
            case Heading(text, level):
                body.append(f"<h{level}>{html.escape(text)}</h{level}>")
            case Paragraph(text):
                body.append(f"<p>{html.escape(text)}</p>")
            case Items(items):
                body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
            case Table(header, rows):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            case Figure(file, caption):
                data = base64.b64encode((out_dir / file).read_bytes()).decode()
                alt = html.escape(caption)
                image = f'<img src="data:image/png;base64,{data}" alt="{alt}">'
                body.append(f"<figure>{image}<figcaption>{alt}</figcaption></figure>")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
