"""LRU eviction under a byte budget: the pure planning logic and what the host protects."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from tests.unit.fakes import FakeEngine
from workers.eviction import Evictor, Protections, plan_eviction
from workers.image_cache import cached_bytes, chain_ids, image_layers
from workers.images import pinned_references

NOW = 1_700_000_000.0
HOUR = 3600.0


def entry(
    image_id: str,
    size: Any = 100,
    *,
    last_used: float | None = None,
    pulled_at: float | None = NOW - HOUR,
    references: list[str] | None = None,
) -> dict[str, Any]:
    """A cache entry as ImageCache.entries() decodes it."""
    return {
        "id": image_id,
        "references": references if references is not None else [f"docker.io/library/{image_id}:1"],
        "size": size,
        "pulled_at": pulled_at,
        "pull_seconds": 1.0,
        "last_used": last_used,
        "use_count": 0,
    }


def ids(victims: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in victims]


def plan(
    entries: list[dict[str, Any]],
    protections: Protections | None = None,
    *,
    budget: int,
    low: float,
) -> Any:
    return plan_eviction(
        entries,
        protections or Protections(min_age_seconds=120.0),
        budget_bytes=budget,
        low_watermark=low,
        now=NOW,
    )


# --- the budget ---------------------------------------------------------------------------------


def test_nothing_is_chosen_while_the_cache_is_within_budget() -> None:
    # 1000 bytes: far above the low watermark (500) but not above the budget.
    entries = [entry(f"img{i}", 250, last_used=NOW - (10 - i) * HOUR) for i in range(4)]

    result = plan(entries, budget=1000, low=0.5)

    assert result.victims == []
    assert result.protected == {}
    assert result.freed_bytes == 0
    assert (result.cache_bytes, result.budget_bytes, result.target_bytes) == (1000, 1000, 500)


def test_an_empty_cache_chooses_nothing() -> None:
    result = plan([], budget=0, low=0.9)

    assert result.victims == []
    assert result.cache_bytes == 0


def test_one_byte_over_budget_evicts_down_to_the_low_watermark() -> None:
    entries = [
        entry("newest", 400, last_used=NOW - 1 * HOUR),
        entry("oldest", 400, last_used=NOW - 3 * HOUR),
        entry("middle", 201, last_used=NOW - 2 * HOUR),
    ]

    result = plan(entries, budget=1000, low=0.5)

    # 1001 -> 601 (still above 500) -> 400: stop.
    assert ids(result.victims) == ["oldest", "middle"]
    assert result.freed_bytes == 601
    assert result.cache_bytes == 1001
    assert result.target_bytes == 500


def test_eviction_stops_as_soon_as_the_cache_reaches_the_target() -> None:
    entries = [entry(f"img{i}", 300, last_used=NOW - (10 - i) * HOUR) for i in range(4)]

    result = plan(entries, budget=1000, low=0.9)

    # 1200 -> 900 == target: one victim is enough.
    assert ids(result.victims) == ["img0"]
    assert result.freed_bytes == 300
    assert result.target_bytes == 900


def test_eviction_may_empty_the_cache_when_the_target_demands_it() -> None:
    entries = [entry(f"img{i}", 100, last_used=NOW - (10 - i) * HOUR) for i in range(3)]

    result = plan(entries, budget=100, low=0.01)

    assert ids(result.victims) == ["img0", "img1", "img2"]
    assert result.freed_bytes == 300


def test_the_target_is_the_budget_times_the_low_watermark_as_an_int() -> None:
    result = plan([entry("a", 10)], budget=1001, low=0.9)

    assert result.target_bytes == 900
    assert isinstance(result.target_bytes, int)


# --- the order ------------------------------------------------------------------------------------


def test_victims_are_least_recently_used_first_whatever_the_input_order() -> None:
    entries = [
        entry("b", 100, last_used=NOW - 2 * HOUR),
        entry("d", 100, last_used=NOW - 0.5 * HOUR),
        entry("a", 100, last_used=NOW - 3 * HOUR),
        entry("c", 100, last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, budget=300, low=0.01)

    assert ids(result.victims) == ["a", "b", "c", "d"]


def test_ties_on_last_used_are_broken_by_pulled_at() -> None:
    used = NOW - HOUR
    entries = [
        entry("pulled-late", 100, last_used=used, pulled_at=NOW - 2 * HOUR),
        entry("pulled-early", 100, last_used=used, pulled_at=NOW - 4 * HOUR),
        entry("pulled-middle", 100, last_used=used, pulled_at=NOW - 3 * HOUR),
    ]

    result = plan(entries, budget=200, low=0.01)

    assert ids(result.victims) == ["pulled-early", "pulled-middle", "pulled-late"]


def test_entries_lacking_last_used_sort_first() -> None:
    absent = entry("absent", 100, pulled_at=NOW - 2 * HOUR)
    del absent["last_used"]
    entries = [
        entry("used-long-ago", 100, last_used=1.0),
        entry("never-used", 100, last_used=None, pulled_at=NOW - 3 * HOUR),
        absent,
    ]

    result = plan(entries, budget=200, low=0.01)

    # The two without last_used first (ordered by pulled_at between them), then the used one.
    assert ids(result.victims) == ["never-used", "absent", "used-long-ago"]


def test_only_as_many_least_recently_used_as_needed_are_chosen() -> None:
    entries = [
        entry("recent", 500, last_used=NOW - 60),
        entry("old", 500, last_used=NOW - 10 * HOUR),
        entry("older", 500, last_used=NOW - 20 * HOUR),
    ]

    result = plan(entries, budget=1400, low=0.8)

    # 1500 -> 1000 <= 1120: the oldest alone.
    assert ids(result.victims) == ["older"]


# --- sizes -------------------------------------------------------------------------------------


def test_sizes_given_as_strings_count_as_ints() -> None:
    entries = [
        entry("a", "600", last_used=NOW - 2 * HOUR),
        entry("b", "700", last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, budget=1000, low=0.5)

    assert result.cache_bytes == 1300
    assert ids(result.victims) == ["a", "b"]
    assert result.freed_bytes == 1300
    assert isinstance(result.freed_bytes, int)


def test_freed_bytes_is_the_sum_of_the_victims_sizes() -> None:
    entries = [
        entry("a", 123, last_used=NOW - 3 * HOUR),
        entry("b", 456, last_used=NOW - 2 * HOUR),
        entry("c", 789, last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, budget=1000, low=0.5)

    # 1368 -> 1245 -> 789 (still above 500) -> 0.
    assert ids(result.victims) == ["a", "b", "c"]
    assert result.freed_bytes == 123 + 456 + 789


def test_an_entry_without_a_size_counts_as_zero_bytes_everywhere() -> None:
    # plan_eviction counts a missing size as 0; the plan's freed_bytes must do the same.
    entries = [
        entry("sizeless", None, last_used=NOW - 3 * HOUR),
        entry("big", 900, last_used=NOW - 2 * HOUR),
    ]

    result = plan(entries, budget=800, low=0.5)

    assert result.cache_bytes == 900
    assert ids(result.victims) == ["sizeless", "big"]
    assert result.freed_bytes == 900


# --- shared layers -----------------------------------------------------------------------------
BASE = ("sha256:base", 1000)


def layered(image_id: str, own: int, *, last_used: float) -> dict[str, Any]:
    """An image built on BASE with one layer of its own of ``own`` bytes."""
    record = entry(image_id, BASE[1] + own, last_used=last_used)
    record["layers"] = [BASE, (f"sha256:{image_id}-top", own)]
    return record


def test_layers_shared_between_images_count_once() -> None:
    entries = [layered(name, 100, last_used=NOW - HOUR) for name in ("a", "b", "c")]

    result = plan(entries, budget=1300, low=0.9)

    assert result.cache_bytes == 1000 + 3 * 100  # Not 3 * 1100.
    assert result.victims == []
    assert cached_bytes(entries) == 1300


def test_an_image_frees_only_the_layers_no_kept_image_has() -> None:
    entries = [
        layered("a", 100, last_used=NOW - 4 * HOUR),
        layered("b", 200, last_used=NOW - 3 * HOUR),
        layered("c", 300, last_used=NOW - 2 * HOUR),
        entry("solo", 500, last_used=NOW - 1 * HOUR),  # Written before layers were recorded.
    ]

    # 1000 + 100 + 200 + 300 + 500 = 2100, target 1850: a frees its 100 only (2000), b its 200
    # only (1800); the base stays with c.
    result = plan(entries, budget=2050, low=1850 / 2050)

    assert ids(result.victims) == ["a", "b"]
    assert result.freed_bytes == 300
    assert result.cache_bytes - result.freed_bytes == 1800


def test_the_base_goes_with_the_last_image_on_it() -> None:
    entries = [
        layered("a", 100, last_used=NOW - 2 * HOUR),
        layered("b", 100, last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, budget=1000, low=0.5)

    assert ids(result.victims) == ["a", "b"]
    assert result.freed_bytes == 1200


def test_image_layers_pair_history_sizes_with_chain_ids() -> None:
    # containerizer-test/big: busybox's layer, then 100 MiB of its own; history oldest first,
    # with an empty (metadata) step between them.
    diff_ids = [
        "sha256:037ccb7cd29310fc5c404031364655b139f1b15f76125992a19dcca424af7611",
        "sha256:6d240cb9b777222c9f338d9c78306c67920b8cf0b3318b7c02178c2e7e2095eb",
    ]
    layers = image_layers("sha256:img", diff_ids, [1985581, 0, 104857600], 106843181)

    # The chain id dockerd itself gives the second layer (its layerdb directory).
    assert layers == [
        (diff_ids[0], 1985581),
        ("sha256:42261b1b59905ba6b0cdcb1aadf71c11e06de21a4d9a26b0b2b1a47f13c4d7ea", 104857600),
    ]
    assert chain_ids(diff_ids[:1]) == diff_ids[:1]


def test_a_history_that_does_not_line_up_makes_the_image_one_layer_of_its_own() -> None:
    diff_ids = ["sha256:a", "sha256:b", "sha256:c"]
    # Known by the image's id, not its top layer's chain id, which an image built on it shares.
    # A layer of size 0: three layers, two sized entries.
    assert image_layers("sha256:img", diff_ids, [10, 0, 20], 30) == [("sha256:img", 30)]
    # Sizes that do not add up to the image's.
    assert image_layers("sha256:img", diff_ids, [10, 5, 20], 99) == [("sha256:img", 99)]
    # No layers known at all.
    assert image_layers("sha256:img", [], [], 7) == [("sha256:img", 7)]


def test_an_image_that_counts_as_one_layer_errs_high_beside_one_built_on_it() -> None:
    diff_ids = ["sha256:a", "sha256:b"]
    squashed = entry("x", 500, last_used=NOW)
    squashed["layers"] = image_layers("x", diff_ids, [500], 500)
    child = entry("y", 510, last_used=NOW)
    child["layers"] = [*zip(chain_ids([*diff_ids, "sha256:c"]), [200, 300, 10], strict=True)]

    assert cached_bytes([squashed, child]) == 500 + 510
    assert cached_bytes([child, squashed]) == 500 + 510


# --- protections -------------------------------------------------------------------------------


def test_an_image_a_container_uses_is_skipped_and_the_next_one_goes() -> None:
    entries = [
        entry("used", 400, last_used=NOW - 3 * HOUR),
        entry("idle", 400, last_used=NOW - 2 * HOUR),
        entry("recent", 400, last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, Protections(in_use=frozenset({"used"})), budget=1000, low=0.5)

    # Protected bytes stay in the cache: 1200 -> 800 -> 400.
    assert ids(result.victims) == ["idle", "recent"]
    assert result.protected == {"used": "used by a container"}
    assert result.freed_bytes == 800


def test_a_pinned_image_is_skipped_by_any_of_its_canonical_references() -> None:
    pinned = entry(
        "pinned",
        400,
        last_used=NOW - 3 * HOUR,
        references=["127.0.0.1:5000/app:1", "docker.io/library/nginx:1.25"],
    )
    entries = [pinned, entry("other", 400, last_used=NOW - 2 * HOUR)]
    protections = Protections(pinned=frozenset({"docker.io/library/nginx:1.25"}))

    result = plan(entries, protections, budget=700, low=0.9)

    assert ids(result.victims) == ["other"]
    assert result.protected == {"pinned": "pinned"}


def test_pins_compare_canonical_references_not_image_ids() -> None:
    entries = [entry("sha256:abc", 400, last_used=NOW - 3 * HOUR)]

    result = plan(entries, Protections(pinned=frozenset({"sha256:abc"})), budget=100, low=0.5)

    assert ids(result.victims) == ["sha256:abc"]
    assert result.protected == {}


def test_an_image_with_foreign_names_is_skipped() -> None:
    entries = [
        entry("shared", 400, last_used=NOW - 3 * HOUR),
        entry("ours", 400, last_used=NOW - 2 * HOUR),
    ]

    result = plan(entries, Protections(shared=frozenset({"shared"})), budget=700, low=0.9)

    assert ids(result.victims) == ["ours"]
    assert result.protected == {"shared": "has names the service did not pull"}


def test_an_image_younger_than_the_minimum_age_is_skipped() -> None:
    entries = [
        entry("young", 400, last_used=None, pulled_at=NOW - 119),
        entry("of-age", 400, last_used=NOW - 60, pulled_at=NOW - 120),
    ]

    result = plan(entries, Protections(min_age_seconds=120.0), budget=700, low=0.9)

    assert ids(result.victims) == ["of-age"]
    assert result.protected == {"young": "younger than the minimum age"}


def test_an_over_budget_cache_whose_images_are_all_protected_yields_no_victims() -> None:
    entries = [
        entry("used", 500, last_used=NOW - 4 * HOUR),
        entry("pinned", 500, last_used=NOW - 3 * HOUR, references=["docker.io/library/redis:7"]),
        entry("shared", 500, last_used=NOW - 2 * HOUR),
        entry("young", 500, last_used=NOW - 1, pulled_at=NOW - 1),
    ]
    protections = Protections(
        in_use=frozenset({"used"}),
        pinned=frozenset({"docker.io/library/redis:7"}),
        shared=frozenset({"shared"}),
        min_age_seconds=120.0,
    )

    result = plan(entries, protections, budget=1000, low=0.5)

    assert result.victims == []
    assert result.freed_bytes == 0
    assert result.cache_bytes == 2000
    assert result.protected == {
        "used": "used by a container",
        "pinned": "pinned",
        "shared": "has names the service did not pull",
        "young": "younger than the minimum age",
    }


def test_images_past_the_target_are_not_examined() -> None:
    entries = [
        entry("old", 600, last_used=NOW - 2 * HOUR),
        entry("used-but-recent", 600, last_used=NOW - 1 * HOUR),
    ]

    result = plan(entries, Protections(in_use=frozenset({"used-but-recent"})), budget=1000, low=0.6)

    assert ids(result.victims) == ["old"]
    assert result.protected == {}


# --- Protections.reason ---------------------------------------------------------------------------


def test_reason_is_none_for_an_unprotected_image() -> None:
    assert Protections().reason(entry("a"), NOW) is None


def test_reason_ignores_age_when_pulled_at_is_unknown() -> None:
    assert Protections(min_age_seconds=1e9).reason(entry("a", pulled_at=None), NOW) is None


def test_reason_accepts_pulled_at_as_a_string() -> None:
    young = entry("a", pulled_at=None)
    young["pulled_at"] = str(NOW - 5)

    assert Protections(min_age_seconds=10).reason(young, NOW) == "younger than the minimum age"
    assert Protections(min_age_seconds=5).reason(young, NOW) is None


def test_reason_of_an_entry_without_references_is_not_pinned() -> None:
    bare = entry("a")
    del bare["references"]

    assert Protections(pinned=frozenset({"docker.io/library/a:1"})).reason(bare, NOW) is None


def test_reason_names_the_first_protection_that_applies() -> None:
    everything = Protections(
        in_use=frozenset({"a"}),
        pinned=frozenset({"docker.io/library/a:1"}),
        shared=frozenset({"a"}),
        min_age_seconds=1e9,
    )
    image = entry("a", pulled_at=NOW)

    assert everything.reason(image, NOW) == "used by a container"
    assert (
        Protections(pinned=everything.pinned, shared=everything.shared, min_age_seconds=1e9).reason(
            image, NOW
        )
        == "pinned"
    )
    assert Protections(shared=everything.shared, min_age_seconds=1e9).reason(image, NOW) == (
        "has names the service did not pull"
    )


# --- Evictor.protections: what the host says --------------------------------------------------


class FakeImages:
    """What Evictor uses of ImageService: its client, the pinned references, images' layers."""

    def __init__(
        self,
        engine: FakeEngine,
        settings: Settings,
        layers: dict[str, list[tuple[str, int]]] | None = None,
    ) -> None:
        self.engine = engine
        self.pinned = pinned_references(settings)
        self.host_layers = layers or {}

    def present_id(self, image_id: str) -> bool:
        return image_id in self.host_layers

    def layers(self, image_id: str) -> list[tuple[str, int]] | None:
        return self.host_layers.get(image_id)


class FakeCache:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self._entries = entries
        self.layers_set: list[str] = []

    def entries(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._entries]

    def set_layers(self, image_id: str, layers: list[tuple[str, int]]) -> None:
        self.layers_set.append(image_id)

    def forget(self, image_id: str) -> None:
        pass


def test_evictor_protections_read_containers_pins_and_foreign_tags() -> None:
    engine = FakeEngine()
    engine.add_container("user")["Image"] = "sha256:used"
    engine.add_container("no-image")["Image"] = ""
    engine.add_image("busybox:latest", image_id="sha256:used")
    engine.add_image("alpine:3", "<none>:<none>", image_id="sha256:ours")
    engine.add_image("busybox:1", "someone/else:tag", image_id="sha256:shared")
    engine.add_image(image_id="sha256:untagged")
    settings = Settings(pinned_images=["nginx:1.25"], image_min_age_seconds=30.0)
    evictor = Evictor(
        FakeImages(engine, settings),  # type: ignore[arg-type]
        cache=None,  # type: ignore[arg-type]
        settings=settings,
    )
    entries = [
        entry("sha256:used", references=["docker.io/library/busybox:latest"]),
        entry("sha256:ours", references=["docker.io/library/alpine:3"]),
        entry("sha256:shared", references=["docker.io/library/busybox:1"]),
        entry("sha256:untagged", references=[]),
        entry("sha256:gone", references=["docker.io/library/gone:1"]),
    ]

    protections = evictor.protections(entries)

    assert engine.called("containers") == ["all"]  # Stopped containers hold their image too.
    assert protections.in_use == frozenset({"sha256:used"})
    assert protections.pinned == frozenset({"docker.io/library/nginx:1.25"})
    assert protections.shared == frozenset({"sha256:shared"})
    assert protections.min_age_seconds == 30.0


# --- Evictor.evict: what it reports --------------------------------------------------------------


class ConflictingEvictor(Evictor):
    """Docker refuses to remove the images in ``refused`` (a container was created meanwhile)."""

    refused: frozenset[str] = frozenset()

    def _remove(self, victim: dict[str, Any]) -> bool:
        return victim["id"] not in self.refused


def test_evict_frees_the_layers_of_removed_images_only_and_upgrades_old_entries() -> None:
    settings = Settings(image_cache_bytes=1000, image_cache_low_watermark=0.5)
    old = entry("old", 1100, last_used=NOW - 3 * HOUR)  # Recorded before layers were.
    old["layers"] = None
    refused = layered("refused", 200, last_used=NOW - 2 * HOUR)
    kept = layered("kept", 300, last_used=NOW - 1 * HOUR)
    host = {"old": [BASE, ("sha256:old-top", 100)], "refused": refused["layers"]}
    host["kept"] = kept["layers"]
    cache = FakeCache([old, refused, kept])
    evictor = ConflictingEvictor(
        FakeImages(FakeEngine(), settings, host),  # type: ignore[arg-type]
        cache,  # type: ignore[arg-type]
        settings,
    )
    evictor.refused = frozenset({"refused"})

    outcome = evictor.evict()

    assert cache.layers_set == ["old"]  # Asked Docker once, and kept what it said.
    # 1000 + 100 + 200 + 300 = 1600 (old counted by its layers, not as 1100 of its own).
    # Planned: old, refused and kept; only old and kept went, refused keeps the base.
    assert outcome["evicted"] == ["docker.io/library/old:1", "docker.io/library/kept:1"]
    assert outcome["cache_bytes"] == 1200
    assert outcome["freed_bytes"] == 400
