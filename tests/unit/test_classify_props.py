"""Properties: nothing raises, noise never changes findings, prefixes never matter."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.classify import Classification, classify, classify_lines
from harness.classify.synth import NOISE, PREFIXES, BootSpec, boot_lines

KERNEL_WORDS = ["CPU3: failed to come online", "Kernel panic - not syncing: x", "BUG: ",
                "psci: failed to boot CPU", "[    1.000000] ", "<2>", "> ", "\x1b[31m",
                "Linux version ", "Booting Linux on physical CPU", "smp: Brought up ",
                "WARNING: CPU: ", "---[ end Kernel panic", "\r", "\n", "CPU", "(-22)"]


def _key(c: Classification) -> tuple[object, ...]:
    return (c.verdict, c.offline_cpus, c.panic, c.cpus_brought_up,
            tuple((p.cpu, p.errno) for p in c.psci_errors),
            tuple((s.kind, s.title, s.count) for s in c.signatures),
            tuple((f.kind, f.cpu, f.errno, f.text) for f in c.findings))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(), st.sampled_from(KERNEL_WORDS))).map("".join))
def test_arbitrary_text_never_raises(text: str) -> None:
    c = classify(text)
    assert c.verdict in ("ok", "vcpu_offline", "boot_failure")
    assert len(c.boots) >= 1


@settings(max_examples=200)
@given(st.binary())
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    lines = (raw.decode("utf-8", errors="replace") for raw in data.split(b"\n"))
    c = classify_lines(lines, expected_cpus=4, online="0-1")
    assert c.verdict in ("ok", "vcpu_offline", "boot_failure")


SPECS = st.builds(
    BootSpec,
    release=st.sampled_from(["4.4.89", "4.14.0", "4.18.0-147.el8.aarch64", "5.10.0", "6.6.33"]),
    cpus=st.integers(min_value=1, max_value=12),
    failed=st.sets(st.integers(min_value=1, max_value=11)).map(lambda s: tuple(sorted(s))),
    retry_failed=st.booleans(),
    panic=st.one_of(st.none(), st.sampled_from(["Attempted to kill init! exitcode=0x0000000b",
                                                "Fatal exception"])),
)


@settings(max_examples=100)
@given(SPECS, st.integers(min_value=0, max_value=2**32 - 1), st.integers(0, 40))
def test_noise_lines_never_change_findings(spec: BootSpec, seed: int, n: int) -> None:
    lines = list(boot_lines(spec))
    base = classify("\n".join(lines))
    rng = random.Random(seed)
    noisy: list[str] = []
    for line in lines:
        noisy.extend(rng.choice(NOISE) for _ in range(rng.randint(0, 2)))
        noisy.append(line)
    noisy.extend(rng.choice(NOISE) for _ in range(n))
    assert _key(classify("\n".join(noisy))) == _key(base)


@settings(max_examples=100)
@given(SPECS, st.sampled_from(sorted(PREFIXES)))
def test_prefix_variants_read_the_same(spec: BootSpec, prefix: str) -> None:
    lines = list(boot_lines(spec))
    base = classify("\n".join(lines))
    assert _key(classify("\n".join(PREFIXES[prefix](s) for s in lines))) == _key(base)


@settings(max_examples=100)
@given(SPECS)
def test_synthetic_boot_reads_as_built(spec: BootSpec) -> None:
    c = classify("\n".join(boot_lines(spec)), expected_cpus=spec.cpus)
    failed = tuple(cpu for cpu in spec.failed if cpu < spec.cpus)
    assert c.offline_cpus == failed
    assert c.cpus_brought_up == spec.cpus - len(failed)
    want = "boot_failure" if spec.panic else ("vcpu_offline" if failed else "ok")
    assert c.verdict == want
    assert c.boots[0].kernel_release == spec.release
    if spec.retry_failed and not spec.panic:
        assert [(p.cpu, p.errno) for p in c.psci_errors] == [(cpu, -22) for cpu in failed]
