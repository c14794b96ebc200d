"""`python -m bench` gathers every benchmark's markdown table into one."""
from bench.__main__ import gathered_row, table_rows

INFERENCE = """machine: 2 CPUs

| step | ms | target ms | ratio | note |
|---|---|---|---|---|
| paper decoder, one mesh | 11.8 | 40 | 0.30 | last layer packed |
| quick model, one face | 4.0 |  |  |  |
"""


def test_rows_keep_measurements_targets_and_ratios():
    rows = table_rows(INFERENCE)
    assert [r["step"] for r in rows] == ["paper decoder, one mesh", "quick model, one face"]
    assert gathered_row("inference", rows[0]) == \
        "| inference | paper decoder, one mesh (last layer packed) | ms: 11.8 | 40 (ms) | 0.30 |"
    assert gathered_row("inference", rows[1]) == "| inference | quick model, one face | ms: 4.0 |  |  |"


def test_no_table_no_rows():
    assert table_rows("error: no model\n") == []
