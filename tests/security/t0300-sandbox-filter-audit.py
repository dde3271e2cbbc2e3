"""B, offline: the grain's seccomp filter audited without running it.

The BPF compiled into the library is exported, simulated by an interpreter
that shares no code with libseccomp over every syscall number of x86_64, x32
and i386 (and the argument cases of the table), and compared with a reviewed
golden file. Needs no root.
"""
import os

import pytest

import bpfsim
import sandboxlib

# SECURITY-TESTS.md, group B: refused whatever the arguments.
MUST_REFUSE = """
ptrace process_vm_readv process_vm_writev keyctl add_key request_key bpf perf_event_open
userfaultfd io_uring_setup io_uring_enter io_uring_register unshare setns clone3 mount
umount2 pivot_root chroot fsopen fsconfig fsmount move_mount open_tree fspick mount_setattr
open_by_handle_at name_to_handle_at modify_ldt init_module finit_module delete_module
kexec_load kexec_file_load reboot swapon swapoff acct syslog quotactl settimeofday
clock_settime adjtimex clock_adjtime sethostname setdomainname iopl ioperm seccomp kcmp
pidfd_getfd process_madvise lookup_dcookie vhangup uselib ustat sysfs _sysctl nfsservctl
create_module get_kernel_syms query_module fanotify_init quotactl_fd memfd_secret
landlock_create_ruleset set_thread_area get_thread_area move_pages migrate_pages
""".split()

ARGUMENT_VECTORS = [(0,) * 6, (0xFFFFFFFFFFFFFFFF,) * 6, (1, 2, 3, 4, 5, 6),
                    (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 63, 17)]


@pytest.fixture(scope="module")
def program():
    return bpfsim.load(sandboxlib.bpf("embedded"))


@pytest.fixture(scope="module")
def names():
    return sandboxlib.syscall_names("x86_64")


@pytest.fixture(scope="module")
def cases():
    return sandboxlib.table()


def golden_path():
    return os.path.join(sandboxlib.GOLDEN_DIR, "seccomp-x86_64.txt")


def test_embedded_filter_is_the_table():
    """The BPF compiled in at build time is what the table builds now."""
    assert sandboxlib.bpf("embedded") == sandboxlib.bpf("export")


def test_golden_file(program, names, cases):
    with open(golden_path()) as f:
        golden = f.read().splitlines()
    now = sandboxlib.golden_text(program, names, cases).splitlines()
    added = [line for line in now if line not in golden]
    removed = [line for line in golden if line not in now]
    assert not added and not removed, (
        "the filter's decisions changed; review and run tests/security/update-seccomp-golden\n"
        f"now: {added[:20]}\ngolden: {removed[:20]}")


def test_golden_file_catches_one_changed_decision(program, names, cases):
    """Negative control: allow one refused call in the BPF; the audit must see it."""
    ret_errno = [i for i, insn in enumerate(program)
                 if insn[0] == 0x06 and insn[3] == 0x00050000 | 38]
    assert ret_errno, "no RET ERRNO(ENOSYS) in the program"
    changed = list(program)
    code, jt, jf, _ = changed[ret_errno[0]]
    changed[ret_errno[0]] = (code, jt, jf, 0x7FFF0000)  # SECCOMP_RET_ALLOW
    with open(golden_path()) as f:
        golden = f.read()
    assert sandboxlib.golden_text(changed, names, cases) != golden


@pytest.mark.parametrize("name", MUST_REFUSE)
def test_refused_whatever_the_arguments(program, names, name):
    nrs = [nr for nr, n in names.items() if n == name]
    if not nrs:
        pytest.skip(f"host: libseccomp knows no '{name}' on x86_64")
    for args in ARGUMENT_VECTORS:
        assert bpfsim.simulate(program, nrs[0], args=args) == "errno:ENOSYS", (name, args)


def test_every_table_case_decided_as_written(program, cases):
    arch = {"x86_64": bpfsim.AUDIT_ARCH_X86_64, "x32": bpfsim.AUDIT_ARCH_X86_64,
            "x86": bpfsim.AUDIT_ARCH_I386}
    wrong = []
    for c in cases:
        got = bpfsim.simulate(program, c["nr"], arch[c["abi"]], c["args"])
        want = "allow" if c["kind"] == "allow" else (
            "errno:ENOSYS" if c["abi"] == "x86_64" else "kill-process")
        if got != want:
            wrong.append((c["id"], c["args"], got, want))
    assert len(cases) > 100
    assert not wrong


def test_other_abis_kill_the_process(program):
    for n in range(0, sandboxlib.NATIVE_MAX + 1):
        assert bpfsim.simulate(program, bpfsim.X32_SYSCALL_BIT | n) == "kill-process", n
        assert bpfsim.simulate(program, n, bpfsim.AUDIT_ARCH_I386) == "kill-process", n
        assert bpfsim.simulate(program, n, bpfsim.AUDIT_ARCH_AARCH64) == "kill-process", n


def test_unknown_numbers_get_enosys(program, names):
    for nr in (1000, 500, 0x3FFFFFFF):
        assert nr not in names
        assert bpfsim.simulate(program, nr) == "errno:ENOSYS"


def test_ioctl_high_bits_cannot_smuggle_tiocsti(program, names):
    ioctl = [nr for nr, n in names.items() if n == "ioctl"][0]
    for high in (0, 1 << 32, 0xFFFFFFFF << 32, 1 << 63):
        assert bpfsim.simulate(program, ioctl, args=(0, high | 0x5412)) == "errno:ENOSYS"
        assert bpfsim.simulate(program, ioctl, args=(0, high | 0x541C)) == "errno:ENOSYS"
        # The control: FIONBIO stays allowed, as the kernel reads the same 32 bits.
        assert bpfsim.simulate(program, ioctl, args=(0, high | 0x5421)) == "allow"


def test_clone_namespace_flags_each_refused(program, names):
    clone = [nr for nr, n in names.items() if n == "clone"][0]
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                 0x40000000):
        assert bpfsim.simulate(program, clone, args=(flag | 17,)) == "errno:ENOSYS", hex(flag)
    # The control: fork() and pthread_create()'s flags are allowed.
    assert bpfsim.simulate(program, clone, args=(0x01200011,)) == "allow"
    assert bpfsim.simulate(program, clone, args=(0x003D0F00,)) == "allow"


def test_simulator_on_a_hand_written_program():
    """The simulator itself, on a program whose answer is known."""
    prog = [(0x20, 0, 0, 0),            # A = nr
            (0x15, 0, 1, 39),           # if A == 39 (getpid) goto allow
            (0x06, 0, 0, 0x7FFF0000),   # allow
            (0x06, 0, 0, 0x00050001)]   # errno EPERM
    assert bpfsim.simulate(prog, 39) == "allow"
    assert bpfsim.simulate(prog, 40) == "errno:EPERM"
