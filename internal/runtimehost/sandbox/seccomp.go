package sandbox

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp layer: a classic BPF program (bubblewrap's --seccomp takes it compiled) that
// makes the kernel interfaces a language worker never needs fail with EPERM — mounting,
// namespaces, tracing other processes, loading kernel code, keys, BPF, perf, io_uring, clock
// and host settings — and refuses foreign syscall ABIs. Everything else is allowed: the
// namespaces, the unprivileged uid and the cgroups do the confining, seccomp shrinks the
// kernel surface behind them (as Docker's default profile does).

// BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
const (
	bpfLdWAbs  = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJeqK    = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK    = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK   = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK    = 0x06 // BPF_RET | BPF_K
	secRetKill = 0x80000000
	secRetErr  = 0x00050000
	secRetOK   = 0x7fff0000

	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArg0 = 16 // low 32 bits of args[0] (little-endian)

	x32SyscallBit = 0x40000000
)

// seccompDenied are the syscalls that fail with EPERM inside the sandbox.
var seccompDenied = []uintptr{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT,
	unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE, unix.SYS_ACCT,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME, unix.SYS_VHANGUP, unix.SYS_QUOTACTL,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD, unix.SYS_FANOTIFY_INIT,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_LOOKUP_DCOOKIE, unix.SYS_SYSLOG,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
}

// cloneNamespaceFlags are the clone(2) flags that would create namespaces.
const cloneNamespaceFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP

// auditArch is the AUDIT_ARCH_* value of the architecture this binary runs on.
func auditArch() (uint32, bool) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, true
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, true
	}
	return 0, false
}

type bpfInsn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

// seccompProgram returns the filter as the kernel's struct sock_filter array (for
// bubblewrap's --seccomp).
func seccompProgram() ([]byte, bool) {
	p, ok := seccompInsns()
	if !ok {
		return nil, false
	}
	b := make([]byte, 0, 8*len(p))
	for _, in := range p {
		b = binary.NativeEndian.AppendUint16(b, in.code)
		b = append(b, in.jt, in.jf)
		b = binary.NativeEndian.AppendUint32(b, in.k)
	}
	return b, true
}

// seccompFilter returns the same filter for seccomp(2) (workers started without
// bubblewrap: direct.go).
func seccompFilter() ([]unix.SockFilter, bool) {
	p, ok := seccompInsns()
	if !ok {
		return nil, false
	}
	f := make([]unix.SockFilter, len(p))
	for i, in := range p {
		f[i] = unix.SockFilter{Code: in.code, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	return f, true
}

// loadSeccomp sets no_new_privs and installs filter on the calling OS thread only (no
// TSYNC): what the thread starts afterwards inherits both across fork and execve. The
// caller keeps the thread locked and lets it end with its goroutine.
func loadSeccomp(filter []unix.SockFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	runtime.KeepAlive(filter)
	return nil
}

func seccompInsns() ([]bpfInsn, bool) {
	arch, ok := auditArch()
	if !ok {
		return nil, false
	}
	errEPERM := uint32(secRetErr | uint32(unix.EPERM))
	errENOSYS := uint32(secRetErr | uint32(unix.ENOSYS))
	var p []bpfInsn
	p = append(p,
		bpfInsn{bpfLdWAbs, 0, 0, seccompDataArch},
		bpfInsn{bpfJeqK, 1, 0, arch},
		bpfInsn{bpfRetK, 0, 0, secRetKill},
		bpfInsn{bpfLdWAbs, 0, 0, seccompDataNr},
	)
	if runtime.GOARCH == "amd64" { // the x32 ABI shares the arch value
		p = append(p, bpfInsn{bpfJgeK, 0, 1, x32SyscallBit}, bpfInsn{bpfRetK, 0, 0, errEPERM})
	}
	for _, nr := range seccompDenied {
		p = append(p, bpfInsn{bpfJeqK, 0, 1, uint32(nr)}, bpfInsn{bpfRetK, 0, 0, errEPERM})
	}
	// clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes libc fall
	// back to clone(2), whose flags are checked below.
	p = append(p, bpfInsn{bpfJeqK, 0, 1, uint32(unix.SYS_CLONE3)}, bpfInsn{bpfRetK, 0, 0, errENOSYS})
	p = append(p,
		bpfInsn{bpfJeqK, 0, 3, uint32(unix.SYS_CLONE)},
		bpfInsn{bpfLdWAbs, 0, 0, seccompDataArg0},
		bpfInsn{bpfJsetK, 0, 1, cloneNamespaceFlags},
		bpfInsn{bpfRetK, 0, 0, errEPERM},
		bpfInsn{bpfRetK, 0, 0, secRetOK},
	)
	return p, true
}
