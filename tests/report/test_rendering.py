"""rendering: a report opens with its findings, right under the title, and the reading page shows no printed text."""

import nbformat

from cifar_utils.report import rendering


def _notebook():
    title = nbformat.v4.new_markdown_cell("# 04 · A question\n\nThe question and the method, at length.")
    work = nbformat.v4.new_code_cell("print('[5/36] a progress line')")
    work.outputs = [nbformat.v4.new_output("stream", name="stdout", text="[5/36] a progress line\n")]
    table = nbformat.v4.new_code_cell("frame")
    table.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "a table"}, execution_count=2)]
    findings = nbformat.v4.new_code_cell("notebook.show_findings([...])", metadata={"tags": ["findings"]})
    findings.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "## Findings\n\n- one"})]
    return nbformat.v4.new_notebook(cells=[title, work, table, findings])


def test_the_findings_come_right_under_the_title_and_before_the_method(tmp_path):
    shown = rendering.reading_notebook(_notebook(), rendering.PathDisplay(tmp_path), "04_x", with_code=False)
    sources = [c.source for c in shown.cells]
    title = sources.index("# 04 · A question")
    assert sources[title + 1] == "notebook.show_findings([...])"
    assert sources[title + 2] == "The question and the method, at length."


def test_the_reading_page_drops_printed_text_and_the_code_twin_keeps_it(tmp_path):
    display = rendering.PathDisplay(tmp_path)
    plain = rendering.reading_notebook(_notebook(), display, "04_x", with_code=False)
    coded = rendering.reading_notebook(_notebook(), display, "04_x", with_code=True)
    assert not any("progress line" in str(c.get("outputs", "")) for c in plain.cells)
    assert any("progress line" in str(c.get("outputs", "")) for c in coded.cells)
    assert any("a table" in str(c.get("outputs", "")) for c in plain.cells)
