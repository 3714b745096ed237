"""Property: whatever a guest prints, the decision and the store take it.

Random bytes (and numbers no integer column can hold) as every guest command's output,
exit status and console, through ``judge`` (with the real classifier), the recorder and
the SQLite store: no exception, exactly one row per boot, and ``vcpu_offline`` only when
the online list was read with exit 0 and parsed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.classify.cpulist import parse_cpu_list
from harness.collect import commands
from harness.evidence import BootEvidence, CommandEvidence, CommandFault, LoopSaw
from harness.model import Cell, Outcome
from harness.outcome import judge
from harness.store import Store
from harness.store.recorder import Recorder, artifact_names

NUMBERISH = st.sampled_from([
    "0-3", "0-99999", "-1", "0-3,99999999999999999999999", "Welcome\n0-3", "",
    "CPU99999999999999999999999: failed to come online",
    "psci: failed to boot CPU3 (-99999999999999999999999)",
    "smp: Brought up 1 node, 99999999999999999999 CPUs",
    "Kernel panic - not syncing: Attempted to kill init!",
])
GUEST_TEXT = st.one_of(
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    NUMBERISH,
    st.lists(NUMBERISH, max_size=6).map("\n".join),
)


@st.composite
def command(draw: st.DrawFn, name: str, cmd: str) -> CommandEvidence:
    fault = draw(st.sampled_from([None, None, None, *CommandFault]))
    status = None if fault is not None else draw(st.one_of(
        st.just(0), st.none(), st.integers(-(1 << 70), 1 << 70)))
    return CommandEvidence(
        name, cmd, status, draw(GUEST_TEXT), draw(GUEST_TEXT),
        draw(st.booleans()), draw(st.booleans()), draw(st.floats(0, 100)),
        fault if status is not None or fault is not None else CommandFault.NO_STATUS,
        draw(GUEST_TEXT))


@st.composite
def evidence_parts(draw: st.DrawFn) -> tuple[int, tuple[CommandEvidence, ...], str, LoopSaw]:
    n = draw(st.integers(0, len(commands.GUEST_COLLECT)))
    cmds = tuple(draw(command(name, cmd)) for name, cmd in commands.GUEST_COLLECT[:n])
    saw = draw(st.sampled_from([LoopSaw(), LoopSaw(), LoopSaw(failure="no SSH within 5s"),
                                LoopSaw(infra="ssh_auth: refused", infra_reason="ssh_auth")]))
    return draw(st.integers(1, 64)), cmds, draw(GUEST_TEXT), saw


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, list[Cell]]:
    tmp = tmp_path_factory.mktemp("props")
    store = Store(tmp / "r.db", durable=False)
    cells = [Cell(id=f"h/g/vcpu{v}", matrix="t", host="h", guest="g", vcpus=v, boots=1000)
             for v in range(1, 65)]
    store.create_run("r", "t", cells)
    yield store, tmp / "run", cells
    store.close()


_counter = itertools.count()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(parts=evidence_parts())
def test_any_guest_output_gives_one_row_and_never_raises(
        rig: tuple[Store, Path, list[Cell]], parts: tuple[int, tuple[CommandEvidence, ...],
                                                          str, LoopSaw]) -> None:
    store, run_dir, cells = rig
    vcpus, cmds, console, saw = parts
    cell = cells[vcpus - 1]
    index = next(_counter)
    ev = BootEvidence(run_id="r", cell=cell, index=index, commands=cmds, console=console,
                      saw=saw)
    result = judge(ev, artifacts=artifact_names(ev))
    Recorder(store, run_dir).record(ev, result)
    rows = store.boots("r", cell.id)
    assert [b.index for b in rows].count(index) == 1
    (row,) = [b for b in rows if b.index == index]
    assert row.outcome is result.outcome and row.reason == result.reason
    if result.outcome is Outcome.VCPU_OFFLINE:
        online = ev.command("online")
        assert online is not None and online.exit_status == 0 and online.fault is None
        assert not online.stdout_truncated
        missing = set(range(vcpus)) - set(parse_cpu_list(online.stdout))
        assert missing and set(result.offline_cpus) == missing
    if saw.infra is None and saw.failure is None and result.outcome is not Outcome.INFRA_ERROR:
        assert (run_dir / cell.folder / str(index) / "meta.json").is_file()
