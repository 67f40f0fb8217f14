"""`make bench` rewrites its measured figures in bench/results.md and keeps the notes below them
(each change's own effect, measured by hand), which no run can measure again."""

from pathlib import Path

from bench.run import NOTES_MARKER, with_kept_notes

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.md"


def test_a_bench_run_replaces_its_figures_and_keeps_the_notes(tmp_path):
    results = tmp_path / "results.md"
    results.write_text(RESULTS.read_text())
    notes = RESULTS.read_text().split(NOTES_MARKER, 1)[1]
    assert "## Issue 40" in notes, "the notes hold each change's measurements"

    written = with_kept_notes("# Benchmark results\n\n| new | figures |\n", results)

    measured, kept = written.split(NOTES_MARKER)
    assert measured == "# Benchmark results\n\n| new | figures |\n\n"
    assert kept == notes


def test_a_first_bench_run_writes_the_marker(tmp_path):
    written = with_kept_notes("# Benchmark results\n", tmp_path / "results.md")
    assert written == f"# Benchmark results\n\n{NOTES_MARKER}\n"
