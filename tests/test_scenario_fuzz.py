"""Fuzzing the scenario loader: any input gives a result or a ``ScenarioError``, in bounded time
and memory, never a traceback.

Two seeded sources, over 10,000 inputs in all: byte-level mutations of the shipped scenarios (bit
flips, YAML and placeholder tokens, alias bombs, deletions, repeated slices) and Hypothesis
documents shaped like the scenario schema with wrong-typed values mixed in. Each input goes through
what ``evaluate`` does (load, bind every step, evaluate); a failure names the input saved under
the test's tmp_path, so it reproduces with ``netpol-conformance evaluate <file>``.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conformance.errors import ScenarioError
from conformance.reference.expectations import evaluate_scenario
from conformance.scenario.load import load_scenario
from tests.strategies import specs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))

HANG_SECONDS = 20
"""One input taking longer than this is a hang (the slowest shipped scenario takes 0.3 s)."""
MEMORY_HEADROOM = 1 << 30
"""Address space one input may add to the process before allocation fails (MemoryError)."""

BYTE_CHUNKS = 8
BYTE_INPUTS = 1000
"""Byte-level mutations: BYTE_CHUNKS tests (spread over xdist workers) of BYTE_INPUTS each."""
SCHEMA_PARTS = 5
SCHEMA_INPUTS = 500
"""Hypothesis documents: SCHEMA_PARTS tests (seeded differently) of SCHEMA_INPUTS each."""

TOKENS = [
    b"&a ", b"*a", b"<<: *a\n", b"&a [*a]", b"{{ ", b" }}", b"{% for i in range(9) %}x{% endfor %}",
    b"{{ ip() }}", b"{{ ip(1) }}", b"{{ 'a' * 99999999 }}", b"{{ 9**9**9 }}", b"{{ ns('x') }}",
    b"{{ pod_cidr }}", b"[", b"]", b"{", b"}", b"- ", b"\n", b": ", b"? ", b"---\n", b"...\n",
    b"0", b"-5", b"70000", b"true", b'"80"', b"80.0", b"null", b"~", b".nan", b"1e999",
    b"!!binary ", b"!!int ", b"!!set ", b"!!timestamp ", b"2001-13-45", b"\xff", b"\xc3", b"\x00",
    b"\t", b"%", b"'", b'"', b"\\", b"metadata: []", b"metadata: x", b"file: ../x.yaml",
    b"file: /dev/zero", b"pod_cidr: 10.0.0.0/33", b"pod_cidr: 10.0.0.0/31", b"fe80::1%eth0/64",
    b"host_network: yes", b"9" * 5000, b"[" * 300 + b"]" * 300,
]  # fmt: skip


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no ``except Exception`` in the code swallows it."""


@contextmanager
def bounded() -> Iterator[None]:
    """Each input: at most HANG_SECONDS, and MEMORY_HEADROOM more address space than now."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang

    old_handler = signal.signal(signal.SIGALRM, alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        in_use = int(fh.read().split()[0]) * resource.getpagesize()
    hard = old_limit[1]
    soft = in_use + MEMORY_HEADROOM
    resource.setrlimit(
        resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
    )
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)
        signal.signal(signal.SIGALRM, old_handler)


class Fuzzer:
    """Runs inputs through load + bind + evaluate and keeps every failure with its input."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.failures: list[str] = []
        self.count = 0
        self.outcomes = {"error": 0, "valid": 0}

    def check(self, name: str, data: bytes) -> None:
        self.count += 1
        path = self.folder / name
        path.write_bytes(data)
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        try:
            evaluate_scenario(load_scenario(path))
            self.outcomes["valid"] += 1
        except ScenarioError as exc:
            self.outcomes["error"] += 1
            if not str(exc).strip():
                self.fail(path, "empty error message")
        except Hang:
            self.fail(path, f"hang: still running after {HANG_SECONDS} s")
        except MemoryError:
            self.fail(path, f"memory blow-up: needed over {MEMORY_HEADROOM >> 20} MiB more")
        except Exception:
            self.fail(path, traceback.format_exc(limit=-4))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if time.monotonic() - started > HANG_SECONDS:  # the alarm was deferred in C code
            self.fail(path, f"hang: took {time.monotonic() - started:.1f} s")

    def fail(self, path: Path, what: str) -> None:
        kept = path.with_name(f"failure-{len(self.failures)}-{path.name}")
        path.rename(kept)
        self.failures.append(f"{kept}: {what}")

    def verdict(self) -> None:
        assert not self.failures, f"{len(self.failures)} inputs failed:\n" + "\n".join(
            self.failures[:10]
        )


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)  # flip a bit
        elif op == 1:
            out[at:at] = rng.choice(TOKENS)
        elif op == 2:
            del out[at : at + rng.randint(1, 40)]
        elif op == 3:  # copy a slice elsewhere (keys, list items, indentation)
            src = rng.randrange(len(out) + 1)
            out[at:at] = out[src : src + rng.randint(1, 80)]
        elif op == 4:
            out[at : at + 1] = bytes([rng.randrange(256)])
        else:  # repeat a slice many times (big lists, long strings, many steps)
            src = rng.randrange(len(out) + 1)
            out[at:at] = out[src : src + rng.randint(1, 60)] * rng.randint(2, 3000)
    return bytes(out)


@pytest.mark.parametrize("chunk", range(BYTE_CHUNKS))
def test_byte_mutations_of_shipped_scenarios_never_crash(tmp_path: Path, chunk: int) -> None:
    rng = random.Random(20_000 + chunk)
    seeds = [(p.name, p.read_bytes()) for p in SHIPPED]
    fuzzer = Fuzzer(tmp_path)
    with bounded():
        for i in range(BYTE_INPUTS):
            name, data = rng.choice(seeds)
            fuzzer.check(f"{chunk}-{i}-{name}", mutate(rng, data))
    fuzzer.verdict()
    assert fuzzer.count == BYTE_INPUTS
    # Mutations must not all be rejected at the YAML stage: some still load and evaluate.
    assert fuzzer.outcomes["valid"] > BYTE_INPUTS // 20, fuzzer.outcomes


# -- documents shaped like the scenario schema, with wrong types and odd values mixed in ---------

odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -5, 80, 65535, 70000, 80.0, float("inf"), float("nan")]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "x/a",
            "x/*",
            "@e",
            "*",
            "80",
            "yes",
            "10.0.0.0/33",
            "fe80::1%eth0/64",
            "{{ ip('x/a') }}/32",
            "{{ ip('@e') }}/32",
            "{{ ip() }}",
            "{{ ip(1) }}",
            "{{ ns('x') }}",
            "{{ pod_cidr }}",
            "{{ 'a' * 1000000000 }}",
            "{% for i in range(10**9) %}{% endfor %}",
            "{{ '128' if ':' in ip('x/b') else '32' }}",
            "{{",
        ]
    ),
)
junk = st.recursive(
    odd_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-typed value, one time in twelve anything (so whole documents often pass
    validation and reach binding and evaluation)."""
    return st.sampled_from(range(12)).flatmap(lambda i: junk if i == 0 else strategy)


def fields(**kwargs: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in kwargs.items()})


def odd(valid: st.SearchStrategy[Any], *invalid: Any) -> st.SearchStrategy[Any]:
    """``valid`` values, and one time in twelve one of ``invalid`` or anything at all."""
    wrong = st.one_of(st.sampled_from(invalid), junk) if invalid else junk
    return st.sampled_from(range(12)).flatmap(lambda i: wrong if i == 0 else valid)


def keys(valid: st.SearchStrategy[str], *invalid: str) -> st.SearchStrategy[str]:
    """Mapping keys: ``valid`` ones, one time in twelve an ``invalid`` one."""
    return st.sampled_from(range(12)).flatmap(
        lambda i: st.sampled_from(invalid) if i == 0 else valid
    )


names = st.sampled_from(["x", "y", "z"])
bad_names = ("w", "X", "a-b", "", "a" * 70)
pod_keys = st.sampled_from(["x/a", "x/b", "y/c", "z/a"])
bad_pod_keys = ("w/q", "a", "x/", "x/A")
labels = st.dictionaries(
    st.sampled_from(["pod", "team", "k"]), odd(st.sampled_from(["a", "b"]), "a b", None), max_size=2
)
port_specs = st.fixed_dictionaries(
    {"port": odd(st.sampled_from([80, 81, 8080]), 0, 70000, "80", 80.0, True)},
    optional={
        "protocol": odd(st.sampled_from(["TCP", "UDP", "SCTP"]), "ICMP", "tcp"),
        "name": odd(st.sampled_from(["serve-80-tcp", "http"]), "Bad_Name", "a" * 20),
    },
)
pod_specs = st.fixed_dictionaries(
    {"name": odd(st.sampled_from(["x/n", "y/n", "z/m"]), *bad_pod_keys)},
    optional={
        "labels": odd(labels),
        "ports": odd(st.lists(port_specs, min_size=1, max_size=2)),
        "ip": odd(st.sampled_from(["10.244.0.50", "10.244.9.9"]), "fe80::1%eth0", "300.1.1.1"),
        "host_network": odd(st.booleans(), "yes", 1),
    },
)
network_policies = st.builds(
    lambda ns, name, spec: {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    },
    odd(names, *bad_names),
    odd(st.sampled_from(["p", "q", "{{ ns('x') }}"]), "P", ""),
    odd(specs),
)
policies = st.one_of(
    network_policies,
    network_policies.map(lambda p: {**p, "metadata": ["list"]}),
    network_policies.map(lambda p: {**p, "metadata": "text"}),
    st.fixed_dictionaries(
        {"kind": st.just("NetworkPolicy")}, optional={"metadata": junk, "spec": junk}
    ),
    st.sampled_from([{"file": "p.yaml"}, {"file": "../p.yaml"}, {"file": "/dev/zero"}]),
)
probes = st.fixed_dictionaries(
    {},
    optional={
        "ports": odd(
            st.lists(st.sampled_from([80, 81]), min_size=1, max_size=2), [0], [-5], [70000]
        ),
        "protocols": odd(st.lists(st.sampled_from(["TCP", "UDP"]), min_size=1, max_size=2)),
        "from": odd(st.lists(st.sampled_from(["x/*", "y/a", "*"]), min_size=1, max_size=2)),
        "to": odd(st.lists(st.sampled_from(["x/a", "y/*", "@e", "*"]), min_size=1, max_size=2)),
    },
)
expects = st.one_of(
    st.fixed_dictionaries(
        {"default": odd(st.sampled_from(["allow", "deny"]), "block")},
        optional={
            "rules": st.lists(
                st.fixed_dictionaries(
                    {"verdict": odd(st.sampled_from(["allow", "deny"]))},
                    optional={
                        "from": odd(st.sampled_from(["*", "x/a"]), "q/q"),
                        "to": st.sampled_from(["*", "x/*"]),
                        "ports": odd(st.lists(st.sampled_from([80, 81]), max_size=2), [0]),
                    },
                ),
                max_size=2,
            )
        },
    ),
    st.sampled_from([{"table": "80/TCP x/a\nx/a .\n"}, {"table": "garbage"}]),
)
placeholders = st.sampled_from(
    [
        "{{ ip('x/a') }}/32",
        "{{ ip('@e') }}/32",
        "{{ ip('x/b') }}/{{ '128' if ':' in ip('x/b') else '32' }}",
        "{{ pod_cidr }}",
    ]
)
bad_placeholders = (
    "{{ ip() }}",
    "{{ ip(1) }}",
    "{{ ip('w/q') }}/32",
    "{{ 'a' * 1000000000 }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ 9**9**9 }}",
    "{{",
)
ip_block_policies = st.builds(
    lambda cidr: {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "ipb", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]},
    },
    odd(placeholders, *bad_placeholders, "fe80::1%eth0/64", "10.0.0.0/33"),
)
applied = st.one_of(network_policies, ip_block_policies, ip_block_policies).flatmap(
    lambda valid: odd(st.just(valid)).flatmap(lambda v: policies if v is not valid else st.just(v))
)
steps = st.fixed_dictionaries(
    {"name": st.sampled_from(["s", "t"])},
    optional={
        "apply": st.lists(applied, max_size=3),
        "delete": odd(st.lists(st.sampled_from(["x/p", "x/ipb"]), max_size=1), ["a/b/c/d"], ["x"]),
        "label_namespaces": st.dictionaries(keys(names, *bad_names), labels, max_size=2),
        "label_pods": st.dictionaries(keys(pod_keys, *bad_pod_keys), labels, max_size=2),
        "add_namespaces": st.dictionaries(
            keys(st.sampled_from(["v", "u"]), *bad_names), st.just({}), max_size=1
        ),
        "add_pods": st.lists(pod_specs, max_size=2, unique_by=lambda p: str(p.get("name"))),
        "remove_pods": odd(st.lists(st.sampled_from(["x/n"]), max_size=1), ["w/q"]),
        "probe": probes,
        "expect": expects,
    },
)
scenarios = st.fixed_dictionaries(
    {"steps": odd(st.lists(steps, min_size=1, max_size=3), [], "steps")},
    optional={
        "name": odd(st.text(max_size=8)),
        "tags": odd(st.lists(st.sampled_from(["a", "b"]), max_size=2)),
        "requires": odd(
            st.lists(st.sampled_from(["SCTP", "UDP", "AdminNetworkPolicy"]), max_size=2),
            ["Teleport"],
        ),
        "topology": st.fixed_dictionaries(
            {},
            optional={
                "namespaces": odd(
                    st.dictionaries(names, st.just({}), min_size=1, max_size=3), {"A": {}}
                ),
                "pods": odd(
                    st.lists(pod_specs, max_size=4, unique_by=lambda p: str(p.get("name")))
                ),
                "ports": odd(st.lists(port_specs, min_size=1, max_size=3)),
                "pod_cidr": odd(st.just("10.244.0.0/16"), "10.0.0.0/30", "10.0.0.0/33", "x"),
            },
        ),
        "external": odd(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.just("e"),
                        "ip": odd(st.just("203.0.113.1"), "fe80::1%eth0", "x"),
                    }
                ),
                max_size=1,
            )
        ),
        "probe": probes,
    },
)


@pytest.mark.parametrize("part", range(SCHEMA_PARTS))
def test_schema_shaped_documents_never_crash(tmp_path: Path, part: int) -> None:
    fuzzer = Fuzzer(tmp_path)

    @seed(30_000 + part)
    @settings(
        max_examples=SCHEMA_INPUTS,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenarios)
    def check(document: dict[str, Any]) -> None:
        fuzzer.check(f"schema-{fuzzer.count}.yaml", json.dumps(document).encode())

    with bounded():
        check()
    fuzzer.verdict()
    assert fuzzer.count >= SCHEMA_INPUTS * 9 // 10
    assert fuzzer.outcomes["valid"] > 0, fuzzer.outcomes
