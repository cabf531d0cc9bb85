import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.memory.bank import MemoryBank, MemoryEntry, make_policy


def _entry(t):
    return MemoryEntry(features=None, temporal_pos=float(t), object_score=1.0)


@pytest.mark.parametrize("capacity", [1, 2, 6])
def test_fifo_keeps_the_newest_capacity_entries_in_order(capacity):
    bank = MemoryBank(capacity, make_policy("fifo"))
    for t in range(10):
        bank.add(_entry(t))
        assert len(bank.entries) == min(t + 1, capacity)
        assert [e.temporal_pos for e in bank.entries] == [float(x) for x in range(max(0, t + 1 - capacity), t + 1)]


def test_capacity_below_one_is_a_user_error():
    with pytest.raises(UserInputError, match="at least 1"):
        MemoryBank(0, make_policy("fifo"))


def test_unknown_policy_is_a_user_error():
    with pytest.raises(UserInputError, match="unknown memory policy"):
        make_policy("lru")


def test_a_policy_that_overfills_the_bank_is_caught():
    class Hoarder:
        name = "hoarder"
        min_capacity = 1

        def insert(self, entries, new, capacity):
            return [*entries, new]

    bank = MemoryBank(2, Hoarder())
    bank.add(_entry(0))
    bank.add(_entry(1))
    with pytest.raises(RuntimeError, match="overfilled"):
        bank.add(_entry(2))
