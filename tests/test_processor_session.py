"""Where the job's driver listens: loopback unless the master is on another machine."""

import os

import pytest

from services.processor import session
from shared.errors import ClickstreamError


class FakeSocket:
    """A UDP socket whose route ends at `local` (or nowhere)."""

    def __init__(self, local: str | None, seen: list):
        self.local, self.seen = local, seen

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def connect(self, address):
        self.seen.append(address)
        if self.local is None:
            raise OSError(101, "Network is unreachable")

    def getsockname(self):
        return (self.local, 40000)


@pytest.mark.parametrize("master", ["local[*]", "local[2]", "spark://127.0.0.1:7077",
                                    "spark://localhost:7077"])
def test_processor_driver_stays_on_loopback_for_a_master_on_this_machine(master):
    assert session.driver_host(master) == "127.0.0.1"


def test_processor_driver_takes_the_configured_address():
    assert session.driver_host("spark://10.0.0.9:7077", "10.0.0.5") == "10.0.0.5"


def test_processor_driver_of_a_remote_master_listens_where_its_workers_reach_it(monkeypatch):
    seen = []
    monkeypatch.setattr(session.socket, "socket", lambda *a: FakeSocket("10.0.0.7", seen))
    assert session.driver_host("spark://spark-master.example:7078,backup:7077") == "10.0.0.7"
    assert seen == [("spark-master.example", 7078)]


def test_processor_driver_without_a_route_to_the_master_says_what_to_set(monkeypatch):
    monkeypatch.setattr(session.socket, "socket", lambda *a: FakeSocket(None, []))
    with pytest.raises(ClickstreamError, match="CLICKSTREAM_SPARK_DRIVER_HOST"):
        session.driver_host("spark://10.9.9.9:7077")


@pytest.mark.parametrize("master,configured,expected", [
    ("local[3]", None, 3), ("local[2, 4]", None, 2), ("local", None, 1),
    ("local[*]", None, os.cpu_count()), ("spark://10.0.0.5:7077", None, 4),
    ("local[3]", 7, 7), ("spark://10.0.0.5:7077", 16, 16),
])
def test_processor_shuffle_partitions_follow_a_local_masters_cores(master, configured, expected):
    assert session.shuffle_partitions(master, configured) == expected
