"""B, live: every case of the filter table, called by the probe in three modes.

  N  bare on the host as root: the call must reach the kernel (any answer but
     the filter's), else the case proves nothing;
  O  under the filter alone, as full root: refused cases get the filter's
     ENOSYS (or a SIGSYS kill for another ABI), allowed ones reach the kernel;
  G  as a grain: the same.

The arguments are harmless (fd -1, pointer 1, bad flags) and each case runs in
a forked child of the probe, so mode N changes nothing on the host. The
simulator's verdict for each case is checked against what the kernel did.
"""
import os

import pytest

import bpfsim
import sandboxlib

CASES = None
UNKNOWN = [1000, 0x3FFFFFFF]  # numbers no kernel has


def cases():
    global CASES
    if CASES is None:
        try:
            CASES = sandboxlib.table()
        except Exception:  # not built: the fixture reports it
            CASES = []
    return CASES


def case_line(c):
    flag = "int80" if c["abi"] == "x86" else ""
    return " ".join([c["id"], str(c["nr"])] + [str(a) for a in c["args"]] + [flag])


@pytest.fixture(scope="module")
def results():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    try:
        pkg = sandboxlib.make_package(os.path.join(tmp, "pkg"))
        var = os.path.join(tmp, "var")
        os.makedirs(var)
        text = "\n".join(case_line(c) for c in cases()) + "\n" + \
            "".join(f"unknown#{nr} {nr} 0 0 0 0 0 0\n" for nr in UNKNOWN)
        host_file = os.path.join(tmp, "cases")
        for path in (host_file, os.path.join(var, "cases")):
            with open(path, "w") as f:
                f.write(text)
        out = {}
        for mode in "NOG":
            if mode == "G":
                p = sandboxlib.run_sandbox(pkg, ["/probe", "syscalls", "/var/cases"], var=var)
            else:
                p = sandboxlib.run(sandboxlib.probe_argv(mode, ["syscalls", host_file]))
            assert p.returncode == 0, f"mode {mode}: exit {p.returncode}: {p.stderr}"
            _, out[mode] = sandboxlib.parse(p.stdout)
            assert len(out[mode]) == len(cases()) + len(UNKNOWN), \
                f"mode {mode}: {p.stdout[-2000:]}"
        yield out
    finally:
        sandboxlib.rmtree(tmp)


def filtered(c):
    return "errno:ENOSYS" if c["abi"] == "x86_64" else "signal:SYS"


def ids():
    return [c["id"] for c in cases()] or ["no-table"]


def get(cid):
    for c in cases():
        if c["id"] == cid:
            return c
    pytest.fail("the filter table could not be read (is sandbox-tool built?)")


@pytest.mark.parametrize("cid", ids())
def test_N_reaches_the_kernel(results, cid):
    c = get(cid)
    got = results["N"][cid]
    assert not got.startswith("signal:SYS"), got
    if c["kind"] == "deny" and got == filtered(c):
        pytest.skip(f"host: this kernel has no {cid.split('#')[0]}; without a filter it already "
                    "answers ENOSYS, so N cannot tell it from the filter (the audit covers it)")
    if c["abi"] != "x86_64":
        return  # the kernel answered (ENOSYS without x32 support, a pid with ia32): no kill
    assert got != "errno:ENOSYS", f"{cid} {c['why']}: {got}"


@pytest.mark.parametrize("mode", ["O", "G"])
@pytest.mark.parametrize("cid", ids())
def test_filter_decides(results, cid, mode):
    c = get(cid)
    got = results[mode][cid]
    if c["kind"] == "deny":
        assert got == filtered(c), f"{cid} ({c['why']}) must be refused: {got}"
    else:
        assert got != "errno:ENOSYS" and not got.startswith("signal:"), \
            f"{cid} ({c['why']}) must reach the kernel: {got}"


@pytest.mark.parametrize("cid", ids())
def test_simulator_agrees_with_the_kernel(results, cid):
    c = get(cid)
    arch = bpfsim.AUDIT_ARCH_I386 if c["abi"] == "x86" else bpfsim.AUDIT_ARCH_X86_64
    program = bpfsim.load(sandboxlib.bpf("embedded")) if not hasattr(
        test_simulator_agrees_with_the_kernel, "program") else \
        test_simulator_agrees_with_the_kernel.program
    test_simulator_agrees_with_the_kernel.program = program
    simulated = bpfsim.simulate(program, c["nr"], arch, c["args"])
    got = results["O"][cid]
    if simulated == "allow":
        assert got != "errno:ENOSYS" and not got.startswith("signal:"), (simulated, got)
    elif simulated == "kill-process":
        assert got == "signal:SYS", (simulated, got)
    else:
        assert got == simulated, (simulated, got)


@pytest.mark.parametrize("nr", UNKNOWN)
def test_unknown_numbers_get_enosys_not_a_kill(results, nr):
    """In every mode: the kernel's ENOSYS (N), the filter's default (O, G)."""
    for mode in "NOG":
        assert results[mode][f"unknown#{nr}"] == "errno:ENOSYS", mode
