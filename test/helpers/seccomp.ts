/**
 * systemd's RestrictAddressFamilies= without systemd: a seccomp filter (the mechanism systemd uses) that fails
 * socket() and socketpair() with EAFNOSUPPORT for every address family not listed. Installed by perl (Debian's
 * perl-base is essential, so it is on every machine) with two syscalls, then exec'd into the command, so the
 * process under test is the command itself with the filter in force. x86_64 and aarch64 only.
 */
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EAFNOSUPPORT = 97;
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;

/** Linux address family numbers by systemd name. */
export const ADDRESS_FAMILIES: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16, AF_PACKET: 17 };

const ARCH: Record<string, { audit: number; prctl: number; socket: number; socketpair: number }> = {
  x64: { audit: 0xc000003e, prctl: 157, socket: 41, socketpair: 53 },
  arm64: { audit: 0xc00000b7, prctl: 167, socket: 198, socketpair: 199 },
};

interface Insn {
  code: number;
  k: number;
  jt?: number | string;
  jf?: number | string;
  label?: string;
}

/** The classic-BPF program: other architectures and other syscalls pass; socket(family, …) passes only for `allowed`. */
function program(allowed: number[], a: (typeof ARCH)[string]): Buffer {
  const insns: Insn[] = [
    { code: BPF_LD_W_ABS, k: 4 }, // seccomp_data.arch
    { code: BPF_JEQ_K, k: a.audit, jf: 'allow' },
    { code: BPF_LD_W_ABS, k: 0 }, // seccomp_data.nr
    { code: BPF_JEQ_K, k: a.socket, jt: 'family' },
    { code: BPF_JEQ_K, k: a.socketpair, jf: 'allow' },
    { code: BPF_LD_W_ABS, k: 16, label: 'family' }, // args[0], low 32 bits (little endian)
    ...allowed.map((f): Insn => ({ code: BPF_JEQ_K, k: f, jt: 'allow' })),
    { code: BPF_RET_K, k: SECCOMP_RET_ERRNO | EAFNOSUPPORT },
    { code: BPF_RET_K, k: SECCOMP_RET_ALLOW, label: 'allow' },
  ];
  const at = (label: string): number => insns.findIndex((i) => i.label === label);
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const rel = (j: number | string | undefined): number => (typeof j === 'string' ? at(j) - i - 1 : (j ?? 0));
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(rel(insn.jt), i * 8 + 2);
    out.writeUInt8(rel(insn.jf), i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}

// prctl(PR_SET_NO_NEW_PRIVS, 1), prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog{len, filter}), exec.
const INSTALL = [
  'my ($nr, $hex) = splice(@ARGV, 0, 2); my $f = pack("H*", $hex);',
  'my $prog = pack("S x6 p", length($f) / 8, $f);',
  'syscall($nr, 38, 1, 0, 0, 0) == 0 or die "PR_SET_NO_NEW_PRIVS: $!\\n";',
  'syscall($nr, 22, 2, $prog, 0, 0) == 0 or die "PR_SET_SECCOMP: $!\\n";',
  'exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n";',
].join(' ');

/** A command prefix (`[cmd, ...args]`) that runs what follows it with only these address families allowed. */
export function restrictAddressFamilies(families: string[]): string[] {
  const a = ARCH[process.arch];
  if (!a) throw new Error(`restrictAddressFamilies: no seccomp numbers for ${process.arch}`);
  const nums = families.map((f) => {
    const n = ADDRESS_FAMILIES[f];
    if (n === undefined) throw new Error(`restrictAddressFamilies: unknown family ${f}`);
    return n;
  });
  return ['perl', '-e', INSTALL, String(a.prctl), program(nums, a).toString('hex')];
}
