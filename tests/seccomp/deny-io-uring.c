/* Runs a command with io_uring denied the way Docker's default seccomp profile denies it:
 * io_uring_setup, io_uring_enter and io_uring_register fail with EPERM; every other system
 * call is allowed. Used by tests/run-all.sh to show that the test suite reports the io_uring
 * variants as skipped (and the server falls back to epoll) where io_uring is blocked.
 *
 *   cc -O2 -o deny-io-uring tests/seccomp/deny-io-uring.c && ./deny-io-uring cargo test ...
 *
 * The filter names the architecture it was built for (x86_64 or aarch64, where the io_uring
 * calls have the same numbers); on any other one it refuses to run, naming the architecture,
 * rather than install a filter that would deny nothing.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#endif

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
#ifndef FILTER_ARCH
    struct utsname u;
    fprintf(stderr,
            "deny-io-uring: unsupported architecture %s (only x86_64 and aarch64); io_uring "
            "would not be denied\n",
            uname(&u) == 0 ? u.machine : "(unknown)");
    return 2;
#else
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("deny-io-uring: installing the seccomp filter");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror("deny-io-uring: exec");
    return 127;
#endif
}
