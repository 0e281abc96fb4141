"""CloudTrail's naming, as the cursor relies on it: what counts as a log file's name, and where a listing resumes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activity import trail


@pytest.mark.parametrize(
    ("name", "parses"),
    [
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/111122223333_CloudTrail_eu-west-1_20261205T1010Z_a1B2.json.gz",
            True,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/111122223333_CloudTrail_eu-west-1_20261206T1010Z_a1B2.json.gz",
            False,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/444455556666_CloudTrail_eu-west-1_20261205T1010Z_a1B2.json.gz",
            False,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/111122223333_CloudTrail_us-east-1_20261205T1010Z_a1B2.json.gz",
            False,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/13/05/111122223333_CloudTrail_eu-west-1_20261305T1010Z_a1B2.json.gz",
            False,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/111122223333_CloudTrail_eu-west-1_20261205T1010Z_a1B2.json.gz.1",
            False,
        ),
        (
            "111122223333/CloudTrail/eu-west-1/2026/12/05/sub/111122223333_CloudTrail_eu-west-1_20261205T1010Z_a.json.gz",
            False,
        ),
        ("111122223333/CloudTrail/eu-west-1/notes.txt", False),
        (
            "111122223333/CloudTrail-Digest/eu-west-1/2026/12/05/111122223333_CloudTrail-Digest_eu-west-1_x_20261205T1010Z.json.gz",
            False,
        ),
    ],
)
def test_log_file_names(name: str, parses: bool) -> None:
    assert trail.is_log_file(f"AWSLogs/o-abc/{name}") is parses


@pytest.mark.parametrize(
    "last_key",
    [
        "",
        "AWSLogs/o-a/111122223333/CloudTrail/eu-west-1/notes.txt",
        "elsewhere/111122223333_CloudTrail_x_20261205T1010Z_a.json.gz",
    ],
)
def test_a_cursor_never_resumes_after_a_name_that_does_not_parse(last_key: str) -> None:
    prefix = "AWSLogs/o-a/111122223333/CloudTrail/eu-west-1/"
    assert trail.resume_after(prefix, last_key, timedelta(minutes=30)) == ""
