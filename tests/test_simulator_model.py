"""The behaviour model: determinism, well-formed sessions, noise, calibration."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from services.simulator import calibration, profile
from services.simulator.model import (
    EVENTS_PER_SESSION,
    MALFORMED,
    Noise,
    SimConfig,
    Simulator,
    row_to_event,
)
from services.simulator.wire import RowEncoder
from shared.events import ACTIONS, DEVICE_TYPES, InvalidEvent, decode, encode, validate

START = 1767571200000  # 2026-01-05T00:00:00Z, a Monday
ANDROID_IOS = {"mobile": {"Android", "iOS"}, "tablet": {"Android", "iPadOS"},
               "desktop": {"Windows", "macOS", "Linux", "ChromeOS"}}


def take(sim: Simulator, n: int, start: int = START) -> list[tuple]:
    return list(itertools.islice(sim.rows(start), n))


@pytest.fixture(scope="module")
def sample() -> list[tuple]:
    """Whole sessions from a busy hour."""
    sim = Simulator(SimConfig(seed=11, events_per_second=50))
    return sim.sessions(START + 19 * 3_600_000, 30_000)


def sessions_of(rows):
    out = defaultdict(list)
    for r in rows:
        out[r[5]].append(r)
    return out


def test_simulator_same_seed_same_events():
    a = take(Simulator(SimConfig(seed=3, events_per_second=8)), 3000)
    b = take(Simulator(SimConfig(seed=3, events_per_second=8)), 3000)
    assert a == b
    c = take(Simulator(SimConfig(seed=4, events_per_second=8)), 3000)
    assert {r[1] for r in a}.isdisjoint({r[1] for r in c})  # ids differ across seeds


def test_simulator_stream_start_does_not_change_later_sessions():
    sim = Simulator(SimConfig(seed=5, events_per_second=8))
    early = take(sim, 20_000, START)
    late = take(sim, 2_000, START + 5 * 60_000 + 17_000)  # mid-block
    late_sessions = {r[5] for r in late}
    early_by_id = {r[1]: r for r in early}
    common = [r for r in late if r[1] in early_by_id]
    assert len(common) > 1000
    assert all(early_by_id[r[1]] == r for r in common)
    assert all(r[5] in late_sessions for r in common)


def test_simulator_events_are_valid_and_encode_like_the_shared_encoder():
    sim = Simulator(SimConfig(seed=1, events_per_second=8))
    enc = RowEncoder()
    for row in take(sim, 2000):
        event = row_to_event(row)
        validate(event)
        assert enc(row) == encode(event)
        assert decode(enc(row)) == event


def test_simulator_sessions_are_well_formed(sample):
    for sid, evs in sessions_of(sample).items():
        ts = [e[2] for e in evs]
        assert ts == sorted(ts), sid
        # page_duration is the real gap to the next event, 0 on the last
        assert [e[26] for e in evs] == [b - a for a, b in zip(ts, ts[1:], strict=False)] + [0]
        users = {(e[4], e[18], e[19], e[20], e[21], e[22], e[23]) for e in evs}
        assert len(users) == 1, sid  # one visitor, one device, one IP per session
        device, os_ = evs[0][18], evs[0][19]
        assert device in DEVICE_TYPES and os_ in ANDROID_IOS[device]
        assert all(e[3] >= e[2] for e in evs)  # collector after device
        in_cart: dict[str, int] = defaultdict(int)
        for e in evs:
            if e[7] == "add_to_cart":
                in_cart[e[9]] += e[31]
            elif e[7] == "remove_from_cart":
                assert in_cart[e[9]] > 0
                in_cart[e[9]] = 0
            elif e[7] == "purchase":
                assert in_cart[e[9]] == e[31], "a purchase follows add_to_cart of its product"
                assert e[33] == e[30] * e[31] and e[32]
        for e in evs:
            assert e[7] in ACTIONS


def test_simulator_one_identity_per_returning_user(sample):
    identity = {}
    for r in sample:
        key = (r[18], r[19], r[20], r[21], r[22], r[23], r[24], r[25])
        assert identity.setdefault(r[4], key) == key


def test_simulator_users_return_over_days():
    sim = Simulator(SimConfig(seed=2, events_per_second=5))
    day1 = {r[4] for r in sim.sessions(START, 20_000)}
    day3 = {r[4] for r in sim.sessions(START + 2 * 86_400_000, 20_000)}
    assert len(day1 & day3) > 100


def test_simulator_events_per_session_constant_matches_model(sample):
    measured = len(sample) / len(sessions_of(sample))
    assert measured == pytest.approx(EVENTS_PER_SESSION, rel=0.08)


def test_simulator_noise_off_by_default_and_deterministic_when_on():
    clean = take(Simulator(SimConfig(seed=9, events_per_second=8)), 5000)
    assert all(r[0] is not MALFORMED for r in clean)
    noise = Noise(late_rate=0.05, out_of_order_rate=0.05, duplicate_rate=0.05,
                  bot_rate=0.1, malformed_rate=0.02)
    noisy = take(Simulator(SimConfig(seed=9, events_per_second=8, noise=noise)), 5000)
    assert noisy == take(Simulator(SimConfig(seed=9, events_per_second=8, noise=noise)), 5000)
    valid = [r for r in noisy if r[0] is not MALFORMED]
    bad = [r for r in noisy if r[0] is MALFORMED]
    enc = RowEncoder()
    assert 40 < len(bad) < 200
    for r in bad:
        with pytest.raises(InvalidEvent):
            decode(enc(r))
    ids = [r[1] for r in valid]
    assert 100 < len(ids) - len(set(ids)) < 450  # duplicates repeat the same event id
    late = [r for r in valid if r[3] - r[2] > 5_000]
    assert len(late) > 30  # many late ones are still on their way after 5000 events
    assert any(r[20] == "HeadlessChrome" for r in valid)
    sent = [r[3] for r in valid]
    assert sent != sorted(sent)  # out of order delivery
    # the clean events are unchanged by noise
    clean_ids = {r[1]: r for r in clean}
    same = [r for r in valid if r[1] in clean_ids and r[3] == clean_ids[r[1]][3]]
    assert all(clean_ids[r[1]] == r for r in same)


def test_simulator_clean_stream_is_in_delivery_order():
    rows = take(Simulator(SimConfig(seed=1, events_per_second=8)), 5000)
    sent = [r[3] for r in rows]
    assert sent == sorted(sent)


@pytest.mark.parametrize("bad", [{"events_per_second": 0}, {"returning_share": 1.5},
                                 {"ab_effect": -2}, {"noise": "x"}])
def test_simulator_rejects_bad_config(bad):
    with pytest.raises((ValueError, TypeError, AttributeError)):
        Simulator(SimConfig(**bad)).block_rows(0)


def test_simulator_profile_matches_calibration_targets():
    """Emergent statistics of a large fixed-seed sample against calibration.py."""
    stats = profile.profile(profile.sample(seed=2024, n_events=400_000, start_ms=START))
    results = profile.check(stats)
    failed = [(t.name, round(v, 4), (t.low, t.high)) for t, v, ok in results if not ok]
    assert not failed, failed
    assert {t.name for t, _, _ in results} == {t.name for t in calibration.TARGETS}
    eps = stats["events_per_session"]
    assert eps["median"] <= eps["mean"] <= eps["p95"]
    assert stats["device_split"]["mobile"] > stats["device_split"]["desktop"]
    hourly = stats["hourly_sessions_share"]
    assert hourly.index(max(hourly)) in range(18, 23) and hourly.index(min(hourly)) in range(1, 7)
    # campaign-specific conversion: email converts better than paid social
    conv = stats["conversion_by_campaign"]
    assert conv["weekly_newsletter"] > conv["summer_sale"]
    assert conv["(direct)"] > 0


def test_simulator_ab_effect_moves_conversion():
    a = profile.profile(profile.sample(seed=5, n_events=150_000, start_ms=START, ab_effect=1.0))
    by = a["conversion_by_variant"]
    assert by["B"] > by["A"] * 1.3


def test_simulator_event_dicts_equal_row_to_event_in_field_order():
    noise = Noise(late_rate=0.05, duplicate_rate=0.05, bot_rate=0.1, malformed_rate=0.02)
    sim = Simulator(SimConfig(seed=9, events_per_second=8, noise=noise))
    rows = take(sim, 4000)
    events = list(itertools.islice(sim.events(START), 4000))
    for row, event in zip(rows, events, strict=True):
        if row[0] is MALFORMED:
            assert isinstance(event, bytes)
        else:
            want = row_to_event(row)
            assert event == want and list(event) == list(want)
    events[0]["page"] = "changed"  # handed-out dicts are independent of the templates
    assert next(sim.events(START))["page"] != "changed"
