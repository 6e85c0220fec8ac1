"""PullProgress: bytes and layers of one pull, from the events Docker streams while pulling."""

from __future__ import annotations

from typing import Any

from workers.images import PullProgress

A, B, C = "a1b2c3d4e5f6", "0f9e8d7c6b5a", "1234567890ab"
MB = 1_000_000


def ev(status: str, layer: str | None = None, **detail: int) -> dict[str, Any]:
    """One event as dockerd sends it (``progressDetail`` is ``{}`` when it has no numbers)."""
    event: dict[str, Any] = {"status": status, "progressDetail": detail}
    if layer is not None:
        event["id"] = layer
    if detail:
        event["progress"] = "[=====>        ]"
    return event


def counts(progress: PullProgress) -> tuple[int, int, int, int]:
    d = progress.as_dict()
    return d["bytes_done"], d["bytes_total"], d["layers_done"], d["layers_total"]


def test_a_new_tracker_reports_nothing() -> None:
    assert PullProgress("busybox:latest").as_dict() == {
        "reference": "busybox:latest",
        "bytes_done": 0,
        "bytes_total": 0,
        "layers_done": 0,
        "layers_total": 0,
    }


def test_bytes_of_a_realistic_pull_along_the_way_and_at_the_end() -> None:
    progress = PullProgress("127.0.0.1:5001/app:1")

    def feed(*events: dict[str, Any]) -> tuple[int, int, int]:
        for event in events:
            progress.update(event)
        done, total, _, layers = counts(progress)
        return done, total, layers

    # The header names the tag in "id": it is not a layer.
    assert feed(ev("Pulling from app", "1")) == (0, 0, 0)
    assert feed(ev("Pulling fs layer", A), ev("Pulling fs layer", B), ev("Already exists", C)) == (
        0,
        0,
        3,
    )
    assert feed(ev("Waiting", B)) == (0, 0, 3)
    assert feed(ev("Downloading", A, current=1 * MB, total=4 * MB)) == (1 * MB, 4 * MB, 3)
    assert feed(ev("Downloading", A, current=3 * MB, total=4 * MB)) == (3 * MB, 4 * MB, 3)
    assert feed(ev("Verifying Checksum", A)) == (3 * MB, 4 * MB, 3)
    assert feed(ev("Download complete", A)) == (4 * MB, 4 * MB, 3)
    assert feed(ev("Downloading", B, current=500_000, total=6 * MB)) == (
        4 * MB + 500_000,
        10 * MB,
        3,
    )
    # Extraction reports uncompressed sizes: they are not download bytes.
    assert feed(ev("Extracting", A, current=9 * MB, total=12 * MB)) == (
        4 * MB + 500_000,
        10 * MB,
        3,
    )
    assert feed(ev("Pull complete", A)) == (4 * MB + 500_000, 10 * MB, 3)
    assert feed(ev("Downloading", B, current=6 * MB, total=6 * MB)) == (10 * MB, 10 * MB, 3)
    assert feed(ev("Download complete", B), ev("Extracting", B, current=1, total=2)) == (
        10 * MB,
        10 * MB,
        3,
    )
    assert feed(ev("Pull complete", B)) == (10 * MB, 10 * MB, 3)
    # The trailer has no layer id.
    assert feed(
        ev("Digest: sha256:" + "0" * 64),
        ev("Status: Downloaded newer image for 127.0.0.1:5001/app:1"),
    ) == (10 * MB, 10 * MB, 3)

    assert progress.as_dict() == {
        "reference": "127.0.0.1:5001/app:1",
        "bytes_done": 10 * MB,
        "bytes_total": 10 * MB,
        "layers_done": 3,
        "layers_total": 3,
    }


def test_layers_done_along_a_realistic_pull() -> None:
    progress = PullProgress("app:1")
    steps: list[tuple[dict[str, Any], int]] = [
        (ev("Pulling from library/app", "1"), 0),
        (ev("Pulling fs layer", A), 0),
        (ev("Pulling fs layer", B), 0),
        (ev("Already exists", C), 1),
        (ev("Waiting", B), 1),
        (ev("Downloading", A, current=1 * MB, total=4 * MB), 1),
        (ev("Download complete", A), 2),
        (ev("Extracting", A, current=1, total=9), 2),
        (ev("Pull complete", A), 2),
        (ev("Downloading", B, current=1, total=6 * MB), 2),
        (ev("Download complete", B), 3),
        (ev("Pull complete", B), 3),
    ]

    seen = []
    for event, _ in steps:
        progress.update(event)
        seen.append(progress.as_dict()["layers_done"])

    assert seen == [expected for _, expected in steps]
    assert progress.as_dict()["layers_total"] == 3


def test_a_layer_only_announced_is_not_done() -> None:
    progress = PullProgress("app:1")

    progress.update(ev("Pulling fs layer", A))
    progress.update(ev("Waiting", B))

    assert counts(progress) == (0, 0, 0, 2)


def test_a_layer_that_already_exists_is_done_with_no_bytes() -> None:
    progress = PullProgress("app:1")

    progress.update(ev("Already exists", A))
    progress.update(ev("Already exists", B))

    assert counts(progress) == (0, 0, 2, 2)


def test_a_layer_being_downloaded_is_not_done_until_complete() -> None:
    progress = PullProgress("app:1")
    progress.update(ev("Pulling fs layer", A))
    progress.update(ev("Downloading", A, current=10, total=100))

    assert counts(progress) == (10, 100, 0, 1)

    progress.update(ev("Download complete", A))

    assert counts(progress) == (100, 100, 1, 1)


def test_pull_complete_without_download_events_counts_the_layer_done() -> None:
    # Small layers can go from "Pulling fs layer" to "Download complete" with no Downloading.
    progress = PullProgress("app:1")
    progress.update(ev("Pulling fs layer", A))
    progress.update(ev("Verifying Checksum", A))
    progress.update(ev("Download complete", A))
    progress.update(ev("Pull complete", A))

    assert counts(progress) == (0, 0, 1, 1)


def test_downloading_without_numbers_changes_nothing() -> None:
    progress = PullProgress("app:1")
    progress.update(ev("Downloading", A, current=5, total=50))
    progress.update({"status": "Downloading", "id": A, "progressDetail": {}})
    progress.update({"status": "Downloading", "id": A})
    progress.update({"status": "Downloading", "id": A, "progressDetail": None})

    assert counts(progress) == (5, 50, 0, 1)


def test_events_without_a_string_id_are_ignored() -> None:
    progress = PullProgress("app:1")
    for event in (
        {"status": "Downloading", "progressDetail": {"current": 1, "total": 2}},
        {"status": "Downloading", "id": None, "progressDetail": {"current": 1, "total": 2}},
        {"status": "Downloading", "id": 7, "progressDetail": {"current": 1, "total": 2}},
        {"status": "Pull complete"},
        {"id": A},
        {},
    ):
        progress.update(event)

    assert counts(progress) == (0, 0, 0, 0)


def test_statuses_are_matched_whatever_their_case() -> None:
    progress = PullProgress("app:1")
    progress.update(ev("downloading", A, current=3, total=9))
    progress.update(ev("DOWNLOAD COMPLETE", B))

    assert counts(progress) == (3, 9, 1, 2)


def test_string_numbers_in_progress_detail_are_counted_as_ints() -> None:
    progress = PullProgress("app:1")
    progress.update(
        {"status": "Downloading", "id": A, "progressDetail": {"current": "7", "total": "70"}}
    )

    done, total, _, _ = counts(progress)
    assert (done, total) == (7, 70)
    assert isinstance(done, int)
    assert isinstance(total, int)
