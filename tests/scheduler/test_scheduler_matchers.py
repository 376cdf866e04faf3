"""Matchers: ISP is a hard filter, region a soft preference, codec and algorithm filters."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from scheduler import (
    MATCHER_FOR_PURPOSE,
    InvalidArgument,
    NoMatchingWorker,
    NoWorkerAvailable,
    Scheduler,
    create_matcher,
    matcher_for,
)
from scheduler.matchers import NOTHING, UNLISTED
from scheduler.records import Capacity, parse_capacity
from tests.scheduler.scheduler_testing import MakeScheduler, portal_info


_task_ids = itertools.count()


def _spread(s: Scheduler, n: int, preference: object) -> Counter[str]:
    """Where ``n`` new tasks with ``preference`` go."""
    return Counter(s.schedule(f"t{next(_task_ids)}", preference) for _ in range(n))


def test_an_isp_is_a_hard_filter_and_an_empty_isp_list_accepts_any(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("a", portal_info(["isp-a"]))
    s.add_worker("b", portal_info(["isp-b"]))
    s.add_worker("any", portal_info([]))
    assert set(_spread(s, 10, {"isp": "isp-a"})) == {"a", "any"}
    assert set(_spread(s, 10, {"isp": "isp-b"})) == {"b", "any"}
    assert set(_spread(s, 10, {"isp": "isp-unknown"})) == {"any"}


def test_no_matching_worker_is_raised_when_the_isp_filter_rejects_everyone(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("a", portal_info(["isp-a"]))
    with pytest.raises(NoMatchingWorker) as caught:
        s.schedule("t", {"isp": "isp-b"})
    assert caught.value.code == "no_matching_worker"


def test_no_worker_available_is_raised_when_matching_workers_are_all_full(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("a", portal_info(["isp-a"]))
    s.add_worker("b", portal_info(["isp-b"]))
    s.update_load("a", 0.9)
    with pytest.raises(NoWorkerAvailable):
        s.schedule("t", {"isp": "isp-a"})


def test_no_worker_available_is_raised_when_there_is_no_worker_at_all(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    with pytest.raises(NoWorkerAvailable) as caught:
        s.schedule("t", {"isp": "isp-a"})
    assert caught.value.code == "no_worker_available"
    assert "portal" in caught.value.message


def test_a_region_is_preferred_when_a_matching_worker_is_available(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("east", portal_info([], ["east"]))
    s.add_worker("west", portal_info([], ["west"]))
    s.add_worker("west-a", portal_info(["isp-a"], ["west"]))
    assert set(_spread(s, 10, {"isp": "isp-b", "region": "west"})) == {"west"}
    assert set(_spread(s, 10, {"isp": "isp-a", "region": "west"})) == {"west", "west-a"}


def test_a_region_falls_back_to_every_isp_compatible_worker(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("east", portal_info([], ["east"]))
    s.add_worker("west-a", portal_info(["isp-a"], ["west"]))
    s.add_worker("north", portal_info([], ["north"]))
    s.update_load("north", 0.99)
    assert set(_spread(s, 10, {"isp": "isp-b", "region": "west"})) == {"east"}
    assert set(_spread(s, 10, {"isp": "isp-b", "region": "north"})) == {"east"}
    assert set(_spread(s, 10, {"isp": "isp-b", "region": "nowhere"})) == {"east"}


@pytest.mark.parametrize(
    "preference",
    [None, "preference", 42, [], {}, {"isp": None, "region": 3}, {"isp": ["x"]}, {"region": {"a": 1}}],
)
def test_a_missing_or_malformed_preference_means_no_preference(
    make_scheduler: MakeScheduler, preference: object
) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("a", portal_info(["isp-a"], ["r1"]))
    s.add_worker("b", portal_info(["isp-b"], ["r2"]))
    assert set(_spread(s, 4, preference)) == {"a", "b"}


def _video(encode: list[object], decode: list[object], isps: list[str] | None = None) -> dict[str, object]:
    return {"capacity": {"isps": isps or [], "regions": [], "video": {"encode": encode, "decode": decode}}}


def test_video_workers_must_support_every_requested_encode_and_decode_format(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("vp8-only", _video(["vp8"], ["vp8"]))
    s.add_worker("both", _video(["vp8", "H264"], ["vp8", "h264"]))
    assert set(_spread(s, 6, {"video": {"encode": ["vp8"], "decode": []}})) == {"vp8-only", "both"}
    assert set(_spread(s, 6, {"video": {"encode": ["vp8", "h264"], "decode": ["vp8"]}})) == {"both"}
    assert set(_spread(s, 6, {"video": {"encode": ["h264"], "decode": ["h264"]}})) == {"both"}
    assert set(_spread(s, 6, None)) == {"vp8-only", "both"}
    with pytest.raises(NoMatchingWorker):
        s.schedule("t-av1", {"video": {"encode": ["av1"]}})


def test_video_formats_may_be_owt_codec_objects(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("cb", _video([{"codec": "h264", "profile": "CB"}], ["vp8"]))
    s.add_worker("plain", _video(["h264"], ["vp8"]))
    assert set(_spread(s, 4, {"video": {"encode": ["h264_cb"]}})) == {"cb"}
    assert set(_spread(s, 4, {"video": {"encode": [{"codec": "H264"}]}})) == {"plain"}


def test_the_video_matcher_applies_the_isp_rule_after_the_codec_filter(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("a", _video(["vp8"], ["vp8"], ["isp-a"]))
    s.add_worker("b", _video(["vp8"], ["vp8"], ["isp-b"]))
    assert set(_spread(s, 4, {"video": {"encode": ["vp8"]}, "isp": "isp-b"})) == {"b"}


def test_analytics_workers_must_list_the_requested_algorithm(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("analytics", "round-robin")
    s.add_worker("face", {"capacity": {"algorithms": ["face-detect"]}})
    s.add_worker("both", {"capacity": {"algorithms": ["face-detect", "pose"]}})
    assert set(_spread(s, 4, {"algorithm": "pose"})) == {"both"}
    assert set(_spread(s, 4, {"algorithm": "face-detect"})) == {"face", "both"}
    assert set(_spread(s, 4, {})) == {"face", "both"}
    with pytest.raises(NoMatchingWorker):
        s.schedule("x", {"algorithm": "unknown"})


def test_the_general_matcher_ignores_preferences(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("conference", "round-robin")
    s.add_worker("a", portal_info(["isp-a"], ["r1"]))
    s.add_worker("b", portal_info(["isp-b"], ["r2"]))
    assert set(_spread(s, 4, {"isp": "isp-a", "region": "r1"})) == {"a", "b"}


def test_purposes_use_owts_matchers() -> None:
    assert matcher_for("portal").name == "isp-region"
    assert matcher_for("webrtc").name == "isp-region"
    assert matcher_for("video").name == "video"
    assert matcher_for("analytics").name == "analytics"
    assert matcher_for("conference").name == "general"
    assert matcher_for("something-new").name == "general"
    assert MATCHER_FOR_PURPOSE["streaming"] == "isp-region"


def test_a_matcher_may_be_chosen_explicitly_and_unknown_names_are_rejected(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("recording", "round-robin", matcher="isp-region")
    s.add_worker("a", portal_info(["isp-a"]))
    s.add_worker("b", portal_info(["isp-b"]))
    assert set(_spread(s, 4, {"isp": "isp-b"})) == {"b"}
    assert s.matcher == "isp-region"
    with pytest.raises(InvalidArgument):
        create_matcher("psychic")


def test_a_worker_joining_later_enters_already_built_pools(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("a", portal_info(["isp-a"], ["r1"]))
    assert set(_spread(s, 3, {"isp": "isp-a", "region": "r1"})) == {"a"}
    s.add_worker("b", portal_info(["isp-a"], ["r1"]))
    assert set(_spread(s, 4, {"isp": "isp-a", "region": "r1"})) == {"a", "b"}


def test_an_isp_that_appears_later_is_matched_exactly(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("any", portal_info([]))
    assert set(_spread(s, 2, {"isp": "isp-new"})) == {"any"}
    s.add_worker("new", portal_info(["isp-new"]))
    s.add_worker("other", portal_info(["isp-other"]))
    assert set(_spread(s, 4, {"isp": "isp-new"})) == {"any", "new"}
    s.remove_worker("new")
    assert set(_spread(s, 2, {"isp": "isp-new"})) == {"any"}


def test_many_distinct_preferences_do_not_break_a_bounded_pool_cache(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "least-used", max_pools=4)
    for i in range(20):
        s.add_worker(f"w{i}", portal_info([f"isp-{i % 5}"], [f"r{i % 3}"]))
    for i in range(200):
        isp, region = f"isp-{i % 7}", f"r{i % 4}"
        if i % 7 >= 5:
            with pytest.raises(NoMatchingWorker):
                s.schedule(f"t{i}", {"isp": isp, "region": region})
            continue
        worker = s.schedule(f"t{i}", {"isp": isp, "region": region})
        capacity = s.worker_info(worker)["capacity"]
        assert isp in capacity["isps"]
        if i % 4 < 3:
            assert region in capacity["regions"]


def _video_in(region: str, encode: list[object], decode: list[object], isps: list[str] | None = None) -> dict[str, object]:
    info = _video(encode, decode, isps)
    capacity = info["capacity"]
    assert isinstance(capacity, dict)
    capacity["regions"] = [region]
    return info


def test_the_video_matcher_prefers_the_region_with_and_without_a_format(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("east", _video_in("east", ["vp8"], ["vp8"]))
    s.add_worker("west", _video_in("west", ["vp8"], ["vp8"]))
    s.add_worker("west-h264", _video_in("west", ["h264"], ["h264"]))
    assert set(_spread(s, 6, {"region": "west"})) == {"west", "west-h264"}
    assert set(_spread(s, 6, {"video": {"encode": ["vp8"]}, "region": "west"})) == {"west"}
    assert set(_spread(s, 6, {"video": {"decode": ["vp8"]}, "region": "east"})) == {"east"}
    assert set(_spread(s, 6, {"video": {"encode": ["h264"]}, "region": "east"})) == {"west-h264"}


def test_the_video_matcher_filters_on_decode_formats_alone(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("vp8", _video(["vp8", "h264"], ["vp8"]))
    s.add_worker("h264", _video(["vp8"], ["h264", "vp8"]))
    assert set(_spread(s, 4, {"video": {"decode": ["h264"]}})) == {"h264"}
    assert set(_spread(s, 4, {"video": {"decode": "H264"}})) == {"h264"}
    assert set(_spread(s, 4, {"video": {"encode": "h264"}})) == {"vp8"}
    # exactly the formats a worker decodes (not a strict subset)
    assert set(_spread(s, 4, {"video": {"decode": ["vp8", "h264"]}})) == {"h264"}


def test_the_video_matcher_applies_the_isp_rule_without_formats(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("a", _video(["vp8"], ["vp8"], ["isp-a"]))
    s.add_worker("b", _video(["vp8"], ["vp8"], ["isp-b"]))
    assert set(_spread(s, 4, {"isp": "isp-b"})) == {"b"}


@pytest.mark.parametrize("video", ["vp8", 42, ["vp8"], None])
def test_a_video_preference_that_is_no_mapping_means_no_format(make_scheduler: MakeScheduler, video: object) -> None:
    s = make_scheduler("video", "round-robin")
    s.add_worker("vp8", _video(["vp8"], ["vp8"]))
    s.add_worker("h264", _video(["h264"], ["h264"]))
    assert set(_spread(s, 4, {"video": video})) == {"vp8", "h264"}


def test_an_analytics_preference_that_is_no_mapping_means_no_algorithm(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("analytics", "round-robin")
    s.add_worker("face", {"capacity": {"algorithms": ["face-detect"]}})
    s.add_worker("pose", {"capacity": {"algorithms": ["pose"]}})
    assert set(_spread(s, 4, "pose")) == {"face", "pose"}


def test_an_unknown_matcher_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(InvalidArgument) as caught:
        create_matcher("psychic")
    assert caught.value.message == "unknown matcher 'psychic'; expected one of: analytics, general, isp-region, video"


def test_matchers_and_their_sentinels_show_their_names() -> None:
    assert repr(create_matcher("video")) == "VideoMatcher()"
    assert repr(create_matcher("general")) == "GeneralMatcher()"
    assert (repr(NOTHING), repr(UNLISTED)) == ("NOTHING", "UNLISTED")


def test_matchers_without_a_soft_preference_prefer_no_worker() -> None:
    capacity = parse_capacity({"capacity": {"regions": ["west"], "algorithms": ["pose"]}})
    assert create_matcher("general").prefers("west", capacity) is False
    assert create_matcher("analytics").prefers("west", capacity) is False
    assert create_matcher("video").prefers("west", capacity) is True
    assert create_matcher("video").prefers("east", capacity) is False


def test_isps_no_worker_lists_share_one_rotation(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("a", portal_info([]))
    s.add_worker("b", portal_info([]))
    s.add_worker("c", portal_info(["isp-c"]))
    assert [s.schedule(f"u{i}", {"isp": isp}) for i, isp in enumerate(["isp-x", "isp-y", "isp-z"])] == ["a", "b", "a"]


def test_the_pool_cache_keeps_its_max_pools_most_recently_used_pools(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin", max_pools=4)
    isps = ["i1", "i2", "i3", "i4"]
    s.add_worker("a", portal_info(isps))
    s.add_worker("b", portal_info(isps))
    s.add_worker("c", portal_info(["i5"]))
    assert [s.schedule(f"first-{isp}", {"isp": isp}) for isp in isps] == ["a", "a", "a", "a"]
    # each of the four pools still goes on with its own rotation
    assert [s.schedule(f"again-{isp}", {"isp": isp}) for isp in ("i4", "i1", "i2")] == ["b", "b", "b"]
    assert s.schedule("fifth", {"isp": "i5"}) == "c"  # a fifth pool: i3's, the least recently used, goes
    assert [s.schedule(f"third-{isp}", {"isp": isp}) for isp in ("i3", "i4")] == ["a", "a"]


def test_capacity_parsing_never_raises() -> None:
    assert parse_capacity(None) == parse_capacity(["capacity"]) == parse_capacity({"capacity": 3}) == Capacity()


def test_ranked_lists_who_could_serve_a_preference_by_the_same_rules_best_first(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler("portal", "last-used")
    s.add_worker("home", portal_info(["isp-a"], ["r1"]))
    s.add_worker("far", portal_info(["isp-a"], ["r2"]))
    s.add_worker("near", portal_info(["isp-a"], ["r1"]))
    s.add_worker("anyone", portal_info([], ["r1"]))
    s.add_worker("other-isp", portal_info(["isp-b"], ["r1"]))
    s.add_worker("drained", portal_info(["isp-a"], ["r1"]))
    s.add_worker("down", portal_info(["isp-a"], ["r1"]))
    s.drain("drained")
    s.update_state("down", "unavailable")
    s.update_load("near", 0.5)  # the region first, then the load: "anyone" before "near"
    preference = {"isp": "isp-a", "region": "r1"}
    assert s.ranked(preference, exclude=["home"], limit=5) == ["anyone", "near", "far"]
    assert s.ranked(preference, exclude=["home"], limit=2) == ["anyone", "near"]
    assert s.ranked({"isp": "isp-b"}, limit=5) == ["anyone", "other-isp"]  # an any-ISP worker passes
    assert s.ranked(None, limit=0) == []
    with pytest.raises(InvalidArgument):
        s.ranked(preference, limit=-1)
