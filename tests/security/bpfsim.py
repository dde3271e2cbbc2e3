"""A classic-BPF interpreter for seccomp filters, independent of libseccomp.

simulate(program, nr, arch, args) runs the filter the way the kernel does on
struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
and returns the action as text: "allow", "errno:ENOSYS", "kill-process", ...
"""
import errno
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# BPF instruction classes and fields (linux/bpf_common.h)
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
TAX, TXA = 0x00, 0x80

RET_ACTIONS = {
    0x80000000: "kill-process",
    0x00000000: "kill-thread",
    0x00030000: "trap",
    0x00050000: "errno",
    0x7FC00000: "user-notif",
    0x7FF00000: "trace",
    0x7FFC0000: "log",
    0x7FFF0000: "allow",
}


def load(data):
    """Raw struct sock_filter[] bytes → list of (code, jt, jf, k)."""
    if len(data) % 8:
        raise ValueError("a BPF program is a multiple of 8 bytes")
    return [struct.unpack_from("<HBBI", data, i) for i in range(0, len(data), 8)]


def seccomp_data(nr, arch, args=(0,) * 6, ip=0):
    args = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr - (1 << 32) if nr >= (1 << 31) else nr, arch, ip,
                       *[a & 0xFFFFFFFFFFFFFFFF for a in args])


def action_text(ret):
    full = ret & 0xFFFF0000
    name = RET_ACTIONS.get(full, f"unknown:{ret:#x}")
    if name == "errno":
        data = ret & 0xFFFF
        return "errno:" + errno.errorcode.get(data, str(data))
    return name


def run(program, data):
    """Execute the program over seccomp_data bytes; return the raw return value."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    while True:
        if pc >= len(program):
            raise ValueError("ran off the end of the program")
        steps += 1
        if steps > 100000:
            raise ValueError("too many steps")
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == LD:
            mode = code & 0xE0
            if mode == ABS:
                if code & 0x18 != W or k + 4 > len(data) or k % 4:
                    raise ValueError(f"bad load at {pc - 1}")
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == IMM:
                a = k
            elif mode == MEM:
                a = mem[k]
            elif mode == LEN:
                a = len(data)
            else:
                raise ValueError(f"unsupported load {code:#x}")
        elif cls == LDX:
            mode = code & 0xE0
            if mode == IMM:
                x = k
            elif mode == MEM:
                x = mem[k]
            elif mode == LEN:
                x = len(data)
            else:
                raise ValueError(f"unsupported ldx {code:#x}")
        elif cls == ST:
            mem[k] = a
        elif cls == STX:
            mem[k] = x
        elif cls == ALU:
            op = code & 0xF0
            v = x if code & 0x08 else k
            if op == ADD:
                a = (a + v) & 0xFFFFFFFF
            elif op == SUB:
                a = (a - v) & 0xFFFFFFFF
            elif op == MUL:
                a = (a * v) & 0xFFFFFFFF
            elif op == DIV:
                a = a // v if v else 0
            elif op == MOD:
                a = a % v if v else 0
            elif op == OR:
                a |= v
            elif op == AND:
                a &= v
            elif op == XOR:
                a ^= v
            elif op == LSH:
                a = (a << v) & 0xFFFFFFFF
            elif op == RSH:
                a >>= v
            elif op == NEG:
                a = (-a) & 0xFFFFFFFF
            else:
                raise ValueError(f"unsupported alu {code:#x}")
        elif cls == JMP:
            op = code & 0xF0
            v = x if code & 0x08 else k
            if op == JA:
                pc += k
                continue
            if op == JEQ:
                taken = a == v
            elif op == JGT:
                taken = a > v
            elif op == JGE:
                taken = a >= v
            elif op == JSET:
                taken = bool(a & v)
            else:
                raise ValueError(f"unsupported jump {code:#x}")
            pc += jt if taken else jf
        elif cls == RET:
            return a if code & 0x18 == 0x10 else k
        elif cls == MISC:
            if code & 0xF8 == TAX:
                x = a
            else:
                a = x
        else:
            raise ValueError(f"bad class {code:#x}")


def simulate(program, nr, arch=AUDIT_ARCH_X86_64, args=(0,) * 6):
    return action_text(run(program, seccomp_data(nr, arch, args)))
