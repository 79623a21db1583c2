"""A short run of the crash cycles (tests/torture/crash.py): SIGKILL at random moments while
clients change certificates and transfers, device certificates (OnsMqtt), CAS orders (placed,
described, cancelled against a quota package) and Azure billing transfers (initiated, accepted,
declined, cancelled); nothing acknowledged may be lost, nothing may be in a state no call could
have left it in, the package's used count must match the orders holding a unit, and each
product must be billed where its accepted transfers put it. On PostgreSQL two nodes share the
database and one is killed each cycle. Longer runs: `python tests/torture/crash.py --cycles 50`."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torture"))

import crash  # noqa: E402


@pytest.mark.slow
def test_sigkill_cycles_lose_nothing_acknowledged(binary, tmp_path):
    lines = []
    tally = crash.run(binary, cycles=4, clients=6, workdir=tmp_path, seed=7, log=lines.append)
    report = "\n".join(lines + tally.problems)
    print(report)
    assert tally.acknowledged >= 50, f"too little work got through to prove anything:\n{report}"
    assert tally.orders_created >= 10, f"too few CAS orders got through:\n{report}"
    assert tally.transfers_initiated >= 10 and tally.transfers_accepted >= 3, (
        f"too few Azure transfers got through:\n{report}")
    assert tally.lost == 0 and tally.wrong == 0, report
