"""The report's HTML: two renderings of each executed notebook, neither naming a machine path.

    reports/<nb>.html        for reading: findings first, then narrative, tables and figures; no code, no
                             printed text (progress, run-by-run lines, timings: print is for whoever runs
                             the code; what a reader needs is Markdown, a table or a figure), no cell that
                             shows nothing
    reports/<nb>.code.html   the same with every cell's code and its printed text

In both, the cell tagged `findings` (a notebook computes its findings last, from its numbers) is shown
first, right under the title, so a report opens with its answers.

A notebook runs in the report's staging folder with absolute paths for its parameters; a reader
needs to know which run and which data, not where a temporary folder was. `PathDisplay` shows a
path relative to the project (`outputs/runs/...`, `data`), as `$CIFAR10_ROOT`, or relative to
the output folder, and replaces those prefixes in the cells' printed output too. The rendered
pages load nothing from the network (no require.js: no widgets or JavaScript outputs here;
MathJax only for a notebook whose markdown holds TeX), so they read the same offline.

nbconvert is imported only when a page is rendered.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..paths import DATA_ENV, project_dir
from ..runs import atomic

CODE_SUFFIX = ".code.html"
INJECTED_TAG = "injected-parameters"  # papermill's tag for the cell it adds
REMOVE_TAG = "remove-cell"  # a cell tagged so is in neither rendering (Jupyter Book's name for it)
FINDINGS_TAG = "findings"  # the cell whose output opens the report, under the title
REPORT_INTERNAL = ("VERIFY_DATA",)  # parameters that say how the report ran, not what the notebook shows
INDEX = "index.html"  # the landing page, one folder above the reports
_TEX = re.compile(r"\$\$|\$[^$\s][^$\n]*\$|\\\(|\\\[")
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
# The lab template, less the scripts it would fetch from a CDN: a report must read offline, and a
# browser that cannot reach the CDN logs an error for each.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- if resources.uses_tex -%}{{ super() }}{%- endif -%}{%- endblock html_head_js_mathjax -%}
"""


def rendering_names(stem: str) -> tuple[str, str]:
    """The file names of a notebook's two renderings: (without code, with code)."""
    return f"{stem}.html", f"{stem}{CODE_SUFFIX}"


def _within(path: Path, base: Path | None) -> Path | None:
    if base is None:
        return None
    try:
        return path.relative_to(base)
    except ValueError:
        return None


@dataclass(frozen=True)
class PathDisplay:
    """How a report shows absolute paths: first relative to the project, then as $CIFAR10_ROOT, then relative
    to the output folder (named by its last part), then the data root by its name, then inside the Python
    environment (`<python>/...`) or the home folder (`~/...`); a path under `staging` is shown where it will
    be once the report moves it into `out_dir`."""

    out_dir: Path
    staging: Path | None = None
    data_root: Path | None = None

    def _anchors(self) -> list[tuple[Path, str]]:
        env_root = os.environ.get(DATA_ENV)
        anchors = [
            (project_dir().resolve(), ""),
            (Path(env_root).expanduser().resolve() if env_root else None, f"${DATA_ENV}"),
            (Path(self.out_dir).resolve(), Path(self.out_dir).resolve().name),
            (
                Path(self.data_root).resolve() if self.data_root else None,
                Path(self.data_root).resolve().name if self.data_root else "",
            ),
            (Path(sys.prefix).resolve(), "<python>"),  # the environment, in a warning's file name
            (Path.home().resolve(), "~"),
        ]
        if _within(anchors[4][0], anchors[0][0]) is not None:  # a .venv inside the project: still the environment
            anchors.insert(0, anchors.pop(4))
        return [(base, label) for base, label in anchors if base is not None]

    def shown(self, path: str | os.PathLike) -> str:
        """`path` as a reader should see it; a relative path is already that."""
        path = Path(path)
        if not path.is_absolute():
            return str(path)
        path = Path(os.path.normpath(path))
        if (inside := _within(path, self.staging and Path(self.staging).resolve())) is not None:
            path = Path(self.out_dir).resolve() / inside
        for base, label in self._anchors():
            if (inside := _within(path, base)) is not None:
                return str(Path(label, inside))
        return f".../{path.name}"  # outside everything the reader knows: its name only

    def value(self, value):
        """A parameter value with its absolute paths shown relative (lists and dicts element by element)."""
        if isinstance(value, str) and os.path.isabs(value):
            return self.shown(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def text(self, text: str) -> str:
        """`text` with every known absolute prefix (staging, output folder, data root, project) replaced."""
        folders = [Path(self.staging).resolve()] if self.staging else []
        folders += [base for base, _ in self._anchors()]
        # The longest first: the staging folder lies inside the output folder, which may lie inside the project.
        for prefix, label in sorted(((str(f), self.shown(f)) for f in folders), key=lambda p: -len(p[0])):
            if prefix in ("", os.sep):
                continue
            pattern = re.escape(prefix) + r"(/|(?![\w.-]))"
            text = re.sub(
                pattern, lambda m, label=label: ("" if label == "." else label + "/") if m.group(1) else label, text
            )
        return text


def _scrub_outputs(cell, display: PathDisplay) -> None:
    for output in cell.get("outputs", []):
        if "text" in output:
            output["text"] = display.text(output["text"])
        for mime in _TEXT_MIMES:
            if mime in output.get("data", {}):
                output["data"][mime] = display.text(output["data"][mime])
        if "traceback" in output:
            output["traceback"] = [display.text(line) for line in output["traceback"]]


def _parameter_lines(parameters: dict, display: PathDisplay) -> list[str]:
    return [f"{name} = {display.value(value)!r}" for name, value in parameters.items() if name not in REPORT_INTERNAL]


def reading_notebook(nb, display: PathDisplay, stem: str, with_code: bool):
    """A copy of the executed notebook as a rendering shows it: paths relative, links to the other rendering
    and the landing page on top; without code, the cells that show nothing dropped and the report's
    parameters listed at the end (with code, they stay in papermill's cell)."""
    nb = copy.deepcopy(nb)
    parameters = dict(nb.metadata.get("papermill", {}).get("parameters") or {})
    nb.metadata.pop("papermill", None)
    cells = []
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        if REMOVE_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            if not with_code:  # printed text (progress, logs, warnings) is for whoever runs the code
                cell.outputs = [o for o in cell.outputs if o.output_type != "stream"]
            _scrub_outputs(cell, display)
            injected = INJECTED_TAG in cell.metadata.get("tags", [])
            if injected:
                cell.source = "\n".join(
                    [
                        "# Parameters set by the report (paths relative to the project)",
                        *_parameter_lines(parameters, display),
                    ]
                )
            if not with_code and (injected or not cell.get("outputs")):
                continue
        cells.append(cell)
    cells = _findings_first(cells)
    plain, coded = rendering_names(stem)
    other = f"[the same with its code]({coded})" if not with_code else f"[the same without code]({plain})"
    nav = nbformat.v4.new_markdown_cell(f"[All reports and the summary](../{INDEX}) · {other}")
    tail = []
    if not with_code and parameters:
        listed = ", ".join(f"`{line}`" for line in _parameter_lines(parameters, display))
        tail = [nbformat.v4.new_markdown_cell(f"*Run by the report with* {listed}.")]
    nb.cells = [nav, *cells, *tail]
    return nb


def _findings_first(cells: list) -> list:
    """The cells with those tagged `findings` moved right under the title: the first markdown cell is split after
    its heading line, so the question and method that follow the title come after the findings."""
    findings = [c for c in cells if FINDINGS_TAG in c.metadata.get("tags", [])]
    rest = [c for c in cells if FINDINGS_TAG not in c.metadata.get("tags", [])]
    title = next((i for i, c in enumerate(rest) if c.cell_type == "markdown"), None)
    if not findings or title is None:
        return rest
    heading, _, intro = rest[title].source.partition("\n")
    head = [nbformat.v4.new_markdown_cell(heading)] + (
        [nbformat.v4.new_markdown_cell(intro.strip())] if intro.strip() else []
    )
    return [*rest[:title], head[0], *findings, *head[1:], *rest[title + 1 :]]


def render_html(nb, name: str, with_code: bool) -> str:
    """One rendering as a self-contained HTML page (figures embedded, nothing fetched from the network)."""
    import nbconvert

    exporter = nbconvert.HTMLExporter(
        raw_template=_TEMPLATE,
        exclude_input=not with_code,
        exclude_input_prompt=not with_code,
        exclude_output_prompt=not with_code,
    )
    uses_tex = any(c.cell_type == "markdown" and _TEX.search(c.source) for c in nb.cells)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}, "uses_tex": uses_tex})
    return body


def notebook_title(nb, fallback: str) -> str:
    """The notebook's first markdown heading, else `fallback`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def write_renderings(executed: str | os.PathLike, reports_dir: str | os.PathLike, display: PathDisplay) -> list[Path]:
    """Render an executed notebook twice into `reports_dir`: [without code, with code]."""
    executed, reports_dir = Path(executed), Path(reports_dir)
    nb = nbformat.read(executed, as_version=4)
    stem = executed.stem
    title = notebook_title(nb, stem)
    written = []
    for file_name, with_code in zip(rendering_names(stem), (False, True)):
        body = render_html(reading_notebook(nb, display, stem, with_code), title, with_code)
        written.append(reports_dir / file_name)
        atomic.write_text(written[-1], body)
    return written
