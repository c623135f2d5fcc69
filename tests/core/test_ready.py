"""The ready queue: the highest priority first, then groups in turn, FIFO within a group."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jupyter_futures.core.ready import ReadyQueue


def drain(q: ReadyQueue[int]) -> list[int]:
    out = []
    while q:
        out.append(q.head())
        q.served()
    return out


def test_groups_take_turns_and_priorities_go_first():
    q: ReadyQueue[int] = ReadyQueue()
    for tid in range(1, 5):
        q.push(tid, 0, group=1)
    q.push(10, 0, group=2)
    q.push(11, 0, group=2)
    q.push(20, 3, group=1)
    q.push(30, -1, group=9)
    assert q.top == 3
    assert drain(q) == [20, 1, 10, 2, 11, 3, 4, 30]
    assert q.top == 0 and not q.levels


def test_a_skipped_head_uses_no_turn():
    q: ReadyQueue[int] = ReadyQueue()
    for tid, group in [(1, 1), (2, 1), (3, 2)]:
        q.push(tid, 0, group)
    q.skip()  # 1 was no longer ready: group 1 keeps its turn
    assert drain(q) == [2, 3]


@given(st.lists(st.tuples(st.integers(-2, 2), st.integers(0, 3)), max_size=60))
def test_every_item_comes_out_once_by_priority_and_in_order_within_a_group(pushes):
    q: ReadyQueue[int] = ReadyQueue()
    for tid, (priority, group) in enumerate(pushes):
        q.push(tid, priority, group)
    assert sorted(item for _p, _g, item in q.items()) == list(range(len(pushes)))
    out = drain(q)
    assert sorted(out) == list(range(len(pushes)))
    priorities = [pushes[t][0] for t in out]
    assert priorities == sorted(priorities, reverse=True)
    for group in range(4):
        mine = [t for t in out if pushes[t][1] == group]
        for p in range(-2, 3):
            same = [t for t in mine if pushes[t][0] == p]
            assert same == sorted(same)
