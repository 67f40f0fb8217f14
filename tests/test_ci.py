"""Under CI (`CI` set, as CI services and .ci/run set it), a test that needs PostgreSQL or
Chromium fails when the machine cannot start them, instead of skipping: a green CI means those
tests ran. Elsewhere such a test is skipped. The fixtures those tests use are asked for here
with PostgreSQL's programs off PATH and a Chromium path with nothing there."""

import pytest


@pytest.fixture
def nothing_to_start(monkeypatch):
    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.setenv("CHROMIUM_PATH", "/nowhere/chromium")


# `browser` is module-scoped (its outcome is kept for the module): asked for once here.
@pytest.mark.parametrize(
    ("fixture", "ci", "outcome"),
    [
        ("postgres_server", "true", pytest.fail.Exception),
        ("postgres_server", "1", pytest.fail.Exception),
        ("postgres_server", None, pytest.skip.Exception),
        ("browser", "true", pytest.fail.Exception),
    ],
)
def test_a_test_that_cannot_start_what_it_needs_fails_under_ci(
    nothing_to_start, monkeypatch, request, fixture, ci, outcome
):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome) as raised:
        request.getfixturevalue(fixture)
    said = str(raised.value)
    assert ("initdb/pg_ctl are not installed" in said) or ("no Chromium at /nowhere" in said)
    assert ("CI is set" in said) == (ci is not None)
