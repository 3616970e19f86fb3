// leastpriv eBPF tracer (bcc). Loaded by leastpriv/tracer/ebpf/program.py, which defines:
//   MODE_CGROUP        1: track every task whose cgroup v2 ancestor at CGROUP_LEVEL is CGROUP_ID
//                      0: track the tgids in `procs` (seeded by userspace, followed through fork)
//   OFF_TI_STATUS      offset of task_struct.thread_info.status  (running kernel's BTF)
//   OFF_PID, OFF_TGID, OFF_CRED, OFF_STACK   offsets in task_struct        (running kernel's BTF)
//   COMPAT_X86         1 on x86_64: TS_COMPAT marks i386 syscalls, bit 30 of the number x32 ones
//   HAVE_GROUP_DEAD    sched_process_exit has the group_dead field
//   OFF_*              struct offsets for the path walk (fs_struct, files_struct, fdtable, file, dentry,
//                      qstr, mount, vfsmount, mm_struct): running kernel's BTF
//   SLOTS, NARCH, MAX_PATHS, RB_PAGES
//   and the syscall semantics header generated from leastpriv/kernel/semantics.py (K_*, ACC_*, OPEN_ACC),
//   prepended by userspace
//   PIDMAP_SIZE (pid_max), USER_SLOTS, PER_CPU, MAX_PROCS (= USER_SLOTS + PER_CPU * possible CPUs)
//   WAKE_EVERY, WAKE_ON_EXIT   when a record wakes userspace (rb_flags)
//   HAVE_TASK_BTF      1 on kernels >= 5.15: bpf_get_current_task_btf and bpf_task_pt_regs (see TLOAD)
//
// The hot path (every syscall of a tracked task) is one program, at the call's return (on_sys_exit: the
// floor this attach method is measured against runs two, at entry and exit), kept near the cost of an
// empty one: find the process (two array lookups), one per-CPU entry of its syscall slot (what the call
// means, its counts and results), a bit test in the image's bitmap; a failure with the errno the slot's
// last failure on this CPU had is only counted there. Hash maps, ring buffer and path
// walks are for news; an open's file is compared with the last one found already sent, before the hash.
//
// The kernel does the counting: per (abi, nr) counts, results and errnos in maps; per
// process image a bitmap of the syscalls it made; per (abi, nr, values) argument counts;
// per capability check a key with its call stack's top frames. Userspace gets only news:
// a syscall or argument tuple seen for the first time, a new path or address, an exec,
// a fork, an exit (with the image's syscall bitmap). A full ring buffer is counted, never
// silent, and a fact whose event was dropped is retried the next time it happens.
//
// Paths are resolved here, at the moment of the call, as the task sees them (relative to its
// root, task->fs->root: a container's own root): the file an fd-returning call opened is walked
// from its struct file (f_path) up through dentries and mounts, as d_path does; a name a call
// passes without opening it (unlink, rename, mkdir, ...) is joined to the path of its dirfd or of
// the cwd, walked the same way. A walk runs once per new (file, access) fact: opens are deduplicated
// on the dentry before walking.

#if COMPAT_X86
// x86_64's saved user registers (struct pt_regs): the entry code's fixed layout; userspace
// checks these offsets against the running kernel's BTF before loading.
struct lp_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};
#define REGS struct lp_regs
#else
#include <linux/ptrace.h>
#define REGS struct pt_regs
#endif

// bpf_probe_read_user{,_str} under names of our own: for every call spelled bpf_probe_read_user*,
// bcc 0.26's rewriter looks the helper up in its table of /proc/kallsyms (~120,000 symbols,
// ~0.08 s a lookup: 0.4 s of each start-up for 5 calls). Userspace sets HAVE_READ_USER on kernels >= 5.5,
// which have both helpers; elsewhere bcc's names (and its fallback to bpf_probe_read) stay.
#if HAVE_READ_USER
static long (*lp_read_user)(void *dst, u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user;
static long (*lp_read_user_str)(void *dst, u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user_str;
#else
#define lp_read_user bpf_probe_read_user
#define lp_read_user_str bpf_probe_read_user_str
#endif

// Plain loads where the verifier knows the type: bpf_get_current_task_btf() and bpf_task_pt_regs()
// return pointers typed by the kernel's BTF; a field of them is read with one load instruction (a fault
// is caught by the JIT's exception table) instead of a bpf_probe_read_kernel call each (~7 ns here).
// The offsets are the BTF's (OFF_*) or pt_regs' fixed layout, so the verifier checks each against the
// field it names. Older kernels: the same reads through bpf_probe_read_kernel.
#if COMPAT_X86 && HAVE_TASK_BTF
static void *(*lp_task_btf)(void) = (void *)BPF_FUNC_get_current_task_btf;
static void *(*lp_task_regs)(void *task) = (void *)BPF_FUNC_task_pt_regs;
#define CUR_TASK() lp_task_btf()
#define CUR_REGS(task, uregs) ((REGS *)lp_task_regs(task))
#define TLOAD(p, off, type) (*(volatile type *)((char *)(p) + (off)))
#else
#define CUR_TASK() ((void *)bpf_get_current_task())
#define CUR_REGS(task, uregs) (uregs)
#define TLOAD(p, off, type) ({ type _v = 0; bpf_probe_read_kernel(&_v, sizeof(_v), (char *)(p) + (off)); _v; })
#endif

// keeps clang from dropping a mask it can prove redundant on one path (the verifier needs it on all),
// or from merging two calls into one
#define OPAQUE(x) asm volatile("" : "+r"(x))

#define ABI_NATIVE 0
#define ABI_I386 1
#define ABI_X32 2

#define TS_COMPAT 0x0002
#define X32_BIT 0x40000000

#define WORDS 32   // >= NARCH * SLOTS / 64, a power of two (the verifier wants a masked index)
#define PBUF 4096  // PATH_MAX: a path event's buffer; the walk writes backwards into a buffer twice as big
#define NAME_MASK 255   // NAME_MAX: one component
#define WALK_CHUNK 32   // walk steps (components, mount crossings) per call of the walker
#define MAX_CHUNKS 8    // calls of the walker per path: deeper than 256 steps is marked truncated
#define ADDR_MAX 128
#define NO_ARG 255

// path status bits (ev_path.status)
#define ST_TRUNC 1    // deeper than WALK_CHUNK * MAX_CHUNKS steps or longer than PBUF: the path is incomplete
#define ST_OUTSIDE 2  // the walk met a root other than the task's (not reachable from its root)
#define ST_JOIN 4     // a directory's path + "/" + the name the call passed: to be normalised (. and ..)
#define ST_CWD 8      // EV_ADDR: buf[ADDR_MAX..] holds the cwd (for a relative unix socket path)

// syscall kinds (K_*), access bits (ACC_*), OPEN_ACC(accmode): the generated semantics header

// event types
#define EV_SYSCALL 1  // first time anywhere: (abi, nr)
#define EV_ARGS 2     // first time anywhere: (abi, nr, values)
#define EV_PATH 3     // a successful open of a path not sent before
#define EV_ADDR 4     // a successful bind/connect
#define EV_EXEC 5     // a tracked task exec'd: filename, the old image's bitmap
#define EV_FORK 6     // a tracked process forked a process
#define EV_EXIT 7     // a tracked process ended: its image's bitmap
#define EV_NEWPROC 8  // cgroup mode: a process seen for the first time
#define EV_SCRIPT 9   // exec of a script: the name the exec was given, joined to the cwd
#define EV_EXE 10     // after EV_EXEC: the path of the file the new image maps

#define F_PENDING 1   // gated command child: not recorded until its execve
#define F_COMPAT 2    // the process made an i386 call (TS_COMPAT): the gate's sys_exits read the task's ABI
#define F_EXECD 4     // the exec was counted at sched_process_exec: its own return (0) is not counted again

// lost-event counters (index in `lost`)
#define L_RINGBUF 0   // ring buffer full
#define L_PROCS 1     // procs map full: a process could not be tracked
#define L_ARGS 2      // argument map full
#define L_CAPS 3      // capability map full
#define L_INFLIGHT 4  // in-flight map full: a path/address was not captured
#define L_OTHER 5     // other-number map full
#define L_ERRNO 6     // errno map full
#define L_FDS 7       // an opened fd could not be looked up in the task's fd table
#define L_WALK 8      // the path walker could not be called
#define L_NLOST 9

struct proc {
    u32 gen;          // image generation: +1 at every exec
    u32 flags;
    u32 tgid;
    u32 live;         // 1 until its exit reached userspace (then its bitmap travelled with EV_EXIT)
    u32 exec_slot;    // slot + 1 of the exec call in progress, as task_rename saw it (0: none)
    u32 pad;
    u64 sockfds;      // which fds have an entry in `sockets`: bit fd for fds < 63, bit 63 for any fd >= 63
                      // (a close of an fd without one looks nothing up)
    u64 seen[WORDS];  // syscalls this image made, bit (abi * SLOTS + nr)
};

struct spec {
    u8 kind;
    u8 nargs;
    u8 idx[3];        // argument indexes whose values are recorded
    u8 ptrarg;        // the recorded value is the u64 that argument 0 points to (clone3's clone_args.flags)
    u8 fidx;          // open flags (NO_ARG: creat; openat2: struct open_how at this index)
    u8 pidx[2];       // path arguments (NO_ARG: none); opens: pidx[0] is only for the failed-open name
    u8 didx[2];       // their dirfd arguments (NO_ARG: the cwd)
    u8 acc[2];        // access bits of each path (K_PATHOP)
};

struct argkey {
    u32 abi;
    s32 nr;
    u64 v[3];
};

struct nrkey {
    u32 abi;
    s32 nr;
};

struct nrstat {
    u64 count, results, ok;
};

// A syscall slot (abi * SLOTS + nr) on one CPU: what the call means (userspace writes `sp` and `known`
// into every CPU's copy before the run) and this CPU's counts. One lookup at entry, one at exit.
struct slotent {
    struct spec sp;
    u8 known;         // fast gate: a call the baseline explains (no args, no path): counted, nothing else
    u8 noret;         // exit, exit_group: never return, counted at the task's exit (full trace)
    s32 err;          // this CPU's latest failures of the call had this errno:
    u64 errn;         //   how many of them are not yet in `errnos` (added there when another errno
                      //   comes; userspace adds what is left at the end)
    u64 count, results, ok;
    u64 av[3];        // this CPU's latest tracked-argument tuple of the call, and how many calls
    u64 an;           //   repeated it since it was counted in `argcounts` (added there when another
                      //   tuple comes; userspace adds what is left at the end)
};

struct errkey {
    u32 abi;
    s32 nr;
    s32 err;
    u32 pad;
};

struct sockkey {
    u32 tgid;
    s32 fd;
};

struct sockinfo {
    u32 domain, type, protocol, pad;
};

struct capkey {
    u32 tgid;
    u32 gen;
    s32 cap;
    s32 denied;
    u32 abi;
    s32 nr;           // syscall in progress (orig_ax), -1 when unknown
    u32 other_cred;   // the check was on credentials other than the task's own
    u32 audit;        // 0: to be told from the stack; 1: audited; 2: CAP_OPT_NOAUDIT (kprobe sees opts)
    u32 nframes;
    u64 ip[6];        // top of the kernel stack at the check
};

// an opened file already sent with these access bits: keyed by its dentry (and its parent and
// name hash, so that a freed dentry reused for another file is not taken for the old one)
struct filekey {
    u64 dentry;
    u64 mnt;
    u64 parent;
    u64 hash_len;
    u64 acc;
};

struct walkbuf {
    char b[2 * PBUF];
};

struct ev_small {
    u32 type;
    u32 tgid;
    u32 tid;
    u32 abi;
    s32 nr;
    u32 gen;
    u32 parent;       // EV_FORK: parent tgid
    u32 pgen;         // EV_FORK: parent's image generation
    u64 v[3];
    char comm[16];
};

// paths and addresses; sent with only the bytes of buf that matter (len)
struct ev_path {
    u32 type;
    u32 tgid;
    u32 tid;
    u32 abi;
    s32 nr;
    u32 gen;
    u32 status;       // ST_* bits
    u32 len;          // bytes of buf sent (a path: with its NUL)
    u64 acc;          // ACC_* bits of a path
    s64 ret;
    struct sockinfo sock;
    char comm[16];
    char buf[PBUF];
};

// EV_EXEC / EV_EXIT: a path event's header and the image's syscall bitmap, then the path
struct ev_big {
    u32 type;
    u32 tgid;
    u32 tid;
    u32 abi;
    s32 nr;
    u32 gen;
    u32 status;
    u32 len;
    u64 acc;
    s64 ret;
    struct sockinfo sock;
    char comm[16];
    u64 seen[WORDS];
    char buf[PBUF];
};

#define EV_PATH_HDR (sizeof(struct ev_path) - PBUF)
#define EV_BIG_HDR (sizeof(struct ev_big) - PBUF)

// Which processes are tracked: tgid -> slot + 1 in `procs` (0: not tracked). Arrays, because the
// test runs for every syscall of every process on the machine: an array lookup is inlined by the
// verifier, a hash lookup costs a helper call and a hash (measured: ~0.1 us per syscall here).
BPF_ARRAY(pidmap, u32, PIDMAP_SIZE);
BPF_HASH(bigpids, u32, u32, 1024);        // tgids >= PIDMAP_SIZE (pid_max raised during the trace)
BPF_ARRAY(procs, struct proc, MAX_PROCS); // slots [0, USER_SLOTS) userspace's, then PER_CPU per CPU
BPF_PERCPU_ARRAY(nextslot, u32, 1);
BPF_PERCPU_ARRAY(slots, struct slotent, NARCH * SLOTS);
BPF_HASH(other, struct nrkey, struct nrstat, 1024);
BPF_HASH(errnos, struct errkey, u64, 8192);
BPF_HASH(argcounts, struct argkey, u64, 16384);
BPF_HASH(caps, struct capkey, u64, 16384);
BPF_HASH(sockets, struct sockkey, struct sockinfo, 16384);
BPF_HASH(paths, struct filekey, u8, MAX_PATHS);
BPF_ARRAY(gseen, u64, WORDS);
BPF_PERCPU_ARRAY(lastopen, struct filekey, 1);   // the file of this CPU's latest open found in `paths`
BPF_PERCPU_ARRAY(lost, u64, L_NLOST);
BPF_PERCPU_ARRAY(walkbufs, struct walkbuf, 1);
BPF_PERCPU_ARRAY(pevs, struct ev_path, 1);
BPF_PERCPU_ARRAY(bevs, struct ev_big, 1);
BPF_ARRAY(enabled, u32, 1);         // cgroup mode: set by userspace once the program is configured
BPF_ARRAY(calib, u64, 1);           // (pt_regs of a task) - task->stack, learnt at a traced task's first call
BPF_RINGBUF_OUTPUT(events, RB_PAGES);

// Signal frames a traced thread has not yet returned from: a sigreturn's sys_exit shows no number (the
// kernel sets orig_ax to -1 as it restores the frame's registers), so which call it was comes from the
// frame signal_deliver pushed: 2 bits each (SIGFRAME_*), the latest at the bottom.
struct frames {
    u64 kinds;
    u32 depth;
    u32 pad;
};
#define SIGFRAME_NATIVE 0   // rt_sigreturn of the native ABI
#define SIGFRAME_X32 1      // x32's rt_sigreturn (SA_X32_ABI: the handler was installed by an x32 call)
#define SIGFRAME_IA32_RT 2  // i386 rt_sigreturn (SA_IA32_ABI with SA_SIGINFO)
#define SIGFRAME_IA32 3     // i386 sigreturn (SA_IA32_ABI without SA_SIGINFO)
BPF_HASH(frames, u32, struct frames, 16384);
BPF_ARRAY(sigret, u32, 4);          // SIGFRAME_* -> slot + 1 of the call that returns from it (userspace)
BPF_ARRAY(fulltrace, u32, 1);       // 1: lp_sys_exit is attached (the full trace), set by userspace

// the full trace is on: the programs that fill in what its sys_exit cannot see run (not for the gate,
// which counts calls at their entry)
static __always_inline int full_trace(void) {
    int zero = 0;
    u32 *on = fulltrace.lookup(&zero);
    return on && *on;
}

#if HAVE_GATE
static long (*lp_task_pt_regs)(void *task) = (void *)BPF_FUNC_task_pt_regs;
static void *(*lp_current_task_btf)(void) = (void *)BPF_FUNC_get_current_task_btf;
#endif

// The current task's saved user registers in a program that does not run at a syscall's own event (0:
// not known yet: without bpf_task_pt_regs, where a traced task's first call showed them).
static __always_inline REGS *task_uregs(void *task) {
#if HAVE_GATE
    return (REGS *)lp_task_pt_regs(lp_current_task_btf());
#else
    int zero = 0;
    u64 *delta = calib.lookup(&zero);
    if (!delta || !*delta)
        return 0;
    u64 stack = 0;
    bpf_probe_read_kernel(&stack, 8, (char *)task + OFF_STACK);
    return (REGS *)(stack + *delta);
#endif
}

// the syscall number in the task's saved registers (-1: none)
static __always_inline s64 regs_nr(REGS *regs) {
    s64 nr = -1;
    if (regs)
        bpf_probe_read_kernel(&nr, 8, &regs->orig_ax);
    return nr;
}

static __always_inline void count_lost(int what) {
    u64 *n = lost.lookup(&what);
    if (n)
        (*n)++;
}

// Records go out without waking userspace (BPF_RB_NO_WAKEUP): it reads when it chooses (session.py: every
// 25 ms while news come, backing off to 1 s, then only when woken), because each wake-up is a context switch
// that the workload pays for when it shares the CPU. These wake it: news it must act on while the process
// still exists (a cgroup newcomer's executable and a script's path are read from /proc), with WAKE_ON_EXIT
// (--pid: the trace ends when the processes have) a process's exit, and every WAKE_EVERY-th record of a CPU,
// so that the ring never fills between two reads (WAKE_EVERY records of every CPU fill at most a quarter of
// it: program.py).
BPF_PERCPU_ARRAY(sent, u64, 1);

static __always_inline u64 rb_flags(int urgent) {
    int zero = 0;
    u64 *n = sent.lookup(&zero);
    if (!n)
        return BPF_RB_FORCE_WAKEUP;
    u64 c = ++*n;
    if (urgent || (c & (WAKE_EVERY - 1)) == 0)
        return BPF_RB_FORCE_WAKEUP;
    return BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_comm(char *comm) {
    bpf_get_current_comm(comm, 16);
}

static __always_inline struct proc *find_proc(u32 tgid) {
    u32 *s;
    if (tgid < PIDMAP_SIZE) {
        s = pidmap.lookup(&tgid);
    } else {
        s = bigpids.lookup(&tgid);
        OPAQUE(s);   // else clang makes the two lookups one call, which the verifier cannot inline (~6 ns)
    }
    if (!s || *s == 0)
        return 0;
    u32 idx = *s - 1;
    return procs.lookup(&idx);
}

static __always_inline void drop_proc(u32 tgid) {
    u32 zero = 0;
    if (tgid < PIDMAP_SIZE)
        pidmap.update(&tgid, &zero);
    else
        bigpids.delete(&tgid);
}

// a fresh slot for a process, from this CPU's range (no atomics: BPF programs are not preempted)
static __always_inline struct proc *new_proc(u32 tgid) {
    int zero = 0;
    u32 *n = nextslot.lookup(&zero);
    if (!n)
        return 0;
    if (*n >= PER_CPU) {
        count_lost(L_PROCS);
        return 0;
    }
    u32 idx = USER_SLOTS + bpf_get_smp_processor_id() * PER_CPU + *n;
    if (idx >= MAX_PROCS) {
        count_lost(L_PROCS);
        return 0;
    }
    (*n)++;
    struct proc *p = procs.lookup(&idx);
    if (!p)
        return 0;
    __builtin_memset(p, 0, sizeof(*p));
    p->tgid = tgid;
    p->live = 1;
    u32 v = idx + 1;
    if (tgid < PIDMAP_SIZE)
        pidmap.update(&tgid, &v);
    else if (bigpids.update(&tgid, &v) != 0)
        count_lost(L_PROCS);
    return p;
}

// the tracked process record of the current task, or NULL
static __always_inline struct proc *current_proc(u32 tgid) {
#if MODE_CGROUP
    // the cgroup decides (a process moved out stops being recorded)
    if (bpf_get_current_ancestor_cgroup_id(CGROUP_LEVEL) != CGROUP_ID)
        return 0;
    struct proc *p = find_proc(tgid);
    if (p)
        return p;
    int zero = 0;
    u32 *on = enabled.lookup(&zero);
    if (!on || !*on)
        return 0;   // userspace has not filled `specs` yet: newcomers wait (no half-recorded process)
    p = new_proc(tgid);
    if (!p)
        return 0;
    struct ev_small *e = events.ringbuf_reserve(sizeof(struct ev_small));
    if (e) {
        __builtin_memset(e, 0, sizeof(*e));
        e->type = EV_NEWPROC;
        e->tgid = tgid;
        e->tid = (u32)bpf_get_current_pid_tgid();
        fill_comm(e->comm);
        events.ringbuf_submit(e, rb_flags(1));
    } else {
        count_lost(L_RINGBUF);
    }
    return p;
#else
    return find_proc(tgid);
#endif
}

// the ABI of the task's current syscall (task: CUR_TASK())
static __always_inline u32 task_abi(void *task) {
#if COMPAT_X86
    return (TLOAD(task, OFF_TI_STATUS, u32) & TS_COMPAT) ? ABI_I386 : ABI_NATIVE;
#else
    return ABI_NATIVE;
#endif
}

static __always_inline void split_nr(u32 *abi, s64 *nr) {
#if COMPAT_X86
    if (*abi == ABI_NATIVE && *nr >= 0 && (*nr & X32_BIT)) {
        *abi = ABI_X32;
        *nr &= ~(s64)X32_BIT;
    }
#endif
}

// syscall argument i of a task in `abi`, from its saved user registers (regs: CUR_REGS())
static __always_inline u64 reg_arg(REGS *regs, u32 abi, int i) {
#if COMPAT_X86
#define RG(f) TLOAD(regs, __builtin_offsetof(struct lp_regs, f), u64)
    u64 v;
    if (abi == ABI_I386) {
        switch (i) {
        case 0: v = RG(bx); break;
        case 1: v = RG(cx); break;
        case 2: v = RG(dx); break;
        case 3: v = RG(si); break;
        case 4: v = RG(di); break;
        default: v = RG(bp); break;
        }
        return v & 0xffffffff;
    }
    switch (i) {
    case 0: v = RG(di); break;
    case 1: v = RG(si); break;
    case 2: v = RG(dx); break;
    case 3: v = RG(r10); break;
    case 4: v = RG(r8); break;
    default: v = RG(r9); break;
    }
#undef RG
#else
    u64 v = 0;
    switch (i) {
    case 0: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM1(regs)); break;
    case 1: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM2(regs)); break;
    case 2: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM3(regs)); break;
    case 3: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM4(regs)); break;
    case 4: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM5(regs)); break;
    default: bpf_probe_read_kernel(&v, 8, &PT_REGS_PARM6(regs)); break;
    }
#endif
    return v;
}

// the slot's entry on this CPU (slot < NARCH * SLOTS)
static __always_inline struct slotent *slot_entry(u32 slot) {
    return slots.lookup(&slot);
}

// The call a task is in, seen from a program that does not run at a syscall's own event (exit, exec,
// rename, a capability check): its slot's entry, or 0 (in no call, or a number past the slots); *abi, *nr
// and *slot are the call's. regs: task_uregs(task).
static __always_inline struct slotent *call_in_progress(void *task, REGS *regs, u32 *abi, s64 *nr, u32 *slot) {
    *nr = regs_nr(regs);
    *abi = task_abi(task);
    split_nr(abi, nr);
    if (*nr < 0 || *nr >= SLOTS)
        return 0;
    *slot = *abi * SLOTS + (u32)*nr;
    return slot_entry(*slot);
}

// a syscall outside the slots (a number no table has): counted in a hash (rare)
static __always_inline void count_other(u32 abi, s64 nr) {
    struct nrkey k = {.abi = abi, .nr = (s32)nr};
    struct nrstat *st = other.lookup(&k);
    if (st) {
        __sync_fetch_and_add(&st->count, 1);
    } else {
        struct nrstat one = {.count = 1};
        if (other.insert(&k, &one) != 0)
            count_lost(L_OTHER);
    }
}

// once: where a task's saved user registers sit on its kernel stack, for task_uregs (uregs: as a syscall's
// own event gives them; with bpf_task_pt_regs, HAVE_GATE, the kernel says it at each use)
static __always_inline void calibrate(REGS *uregs, void *task) {
#if !HAVE_GATE
    int zero = 0;
    u64 *cal = calib.lookup(&zero);
    if (cal && *cal == 0 && uregs) {
        u64 stack = 0;
        bpf_probe_read_kernel(&stack, 8, (char *)task + OFF_STACK);
        *cal = (u64)uregs - stack;
    }
#endif
}

// news: the image's first call of this slot (and maybe the first anywhere)
static __always_inline void first_call(struct proc *p, u64 pid_tgid, u32 abi, s64 nr, u32 w, u64 bit, REGS *uregs,
                                       void *task) {
    __sync_fetch_and_or(&p->seen[w], bit);   // atomic: threads of one process share the bitmap
    calibrate(uregs, task);
    u64 *g = gseen.lookup(&w);
    if (g && !(*g & bit)) {
        struct ev_small *e = events.ringbuf_reserve(sizeof(struct ev_small));
        if (e) {
            __sync_fetch_and_or(g, bit);
            __builtin_memset(e, 0, sizeof(*e));
            e->type = EV_SYSCALL;
            e->tgid = pid_tgid >> 32;
            e->tid = (u32)pid_tgid;
            e->abi = abi;
            e->nr = (s32)nr;
            e->gen = p->gen;
            fill_comm(e->comm);
            events.ringbuf_submit(e, rb_flags(0));
        } else {
            count_lost(L_RINGBUF);   // counts and the bitmap keep the fact: only the live notice is lost
        }
    }
}

// argcounts[*k] += n (add_errno's twin for another map: bcc takes no map as an argument and refuses map
// functions inside a macro, so each map that counts runs has its own copy of these lines)
static __always_inline void add_args(struct argkey *k, u64 n) {
    u64 *c = argcounts.lookup(k);
    if (c) {
        __sync_fetch_and_add(c, n);
    } else if (argcounts.insert(k, &n) != 0) {
        c = argcounts.lookup(k);
        if (c)
            __sync_fetch_and_add(c, n);
        else
            count_lost(L_ARGS);
    }
}

// a call with tracked argument values: counted per tuple, a new tuple is news. A repeat of this CPU's
// latest tuple of the call costs a compare and a per-CPU increment (the run is added to `argcounts` when
// another tuple comes, or by userspace at the end); another tuple, one map lookup, as before.
static __always_inline void count_args(struct slotent *s, REGS *regs, u64 pid_tgid, u32 abi, s64 nr) {
    struct spec *sp = &s->sp;
    struct argkey k = {.abi = abi, .nr = (s32)nr};
    if (sp->ptrarg) {
        u64 ptr = reg_arg(regs, abi, 0);
        lp_read_user(&k.v[0], 8, (void *)ptr);
    } else {
        #pragma unroll
        for (int i = 0; i < 3; i++)
            if (i < sp->nargs)
                k.v[i] = reg_arg(regs, abi, sp->idx[i] > 5 ? 5 : sp->idx[i]);
    }
    if (s->av[0] == k.v[0] && s->av[1] == k.v[1] && s->av[2] == k.v[2] && (s->an || s->count > 1)) {
        s->an++;   // (count > 1: av holds a tuple of this call, not the zeroed start)
        return;
    }
    if (s->an) {
        struct argkey old = {.abi = abi, .nr = (s32)nr, .v = {s->av[0], s->av[1], s->av[2]}};
        add_args(&old, s->an);
        s->an = 0;
    }
    s->av[0] = k.v[0];
    s->av[1] = k.v[1];
    s->av[2] = k.v[2];
    u64 *n = argcounts.lookup(&k);
    if (n) {
        __sync_fetch_and_add(n, 1);
        return;
    }
    u64 one = 1;
    if (argcounts.insert(&k, &one) == 0) {
        struct ev_small *e = events.ringbuf_reserve(sizeof(struct ev_small));
        if (e) {
            __builtin_memset(e, 0, sizeof(*e));
            e->type = EV_ARGS;
            e->tgid = pid_tgid >> 32;
            e->tid = (u32)pid_tgid;
            e->abi = abi;
            e->nr = (s32)nr;
            e->v[0] = k.v[0];
            e->v[1] = k.v[1];
            e->v[2] = k.v[2];
            events.ringbuf_submit(e, rb_flags(0));
        } else {
            count_lost(L_RINGBUF);   // the map keeps the fact
        }
    } else {
        n = argcounts.lookup(&k);
        if (n)
            __sync_fetch_and_add(n, 1);
        else
            count_lost(L_ARGS);
    }
}

// close(fd): forget the socket the process created there (looked up only when it has one there)
static __always_inline void forget_socket(struct proc *p, u32 tgid, s32 fd) {
    if (fd < 0)
        return;
    u64 bit = 1ULL << (fd < 63 ? fd : 63);
    if (!(p->sockfds & bit))
        return;
    if (fd < 63)
        __sync_fetch_and_and(&p->sockfds, ~bit);
    struct sockkey sk = {.tgid = tgid, .fd = fd};
    sockets.delete(&sk);
}

// A call of slot `slot` (abi * SLOTS + nr) without tracked arguments: its count, and the image's first
// call of the syscall is news. uregs: the task's saved user registers as the attach point gives them (used
// only to calibrate). Returns 1 for a call the fast gate's baseline explains: nothing but the count.
// (exit, exit_group, sigreturns and execs have no tracked argument: the programs that count them use this
// alone, which keeps the verifier's work, and the start-up, small)
static __always_inline int count_plain(struct proc *p, struct slotent *s, u32 slot, u64 pid_tgid, u32 abi, s64 nr,
                                       REGS *uregs, void *task) {
    s->count++;   // per CPU: no atomic
    if (s->known)
        return 1;
    u32 w = (slot >> 6) & (WORDS - 1);
    u64 bit = 1ULL << (slot & 63);
    if (!(p->seen[w] & bit))
        first_call(p, pid_tgid, abi, nr, w, bit, uregs, task);
    return 0;
}

// Any call: count_plain, then a new argument tuple is news and a close forgets its socket. regs: the
// task's saved user registers (CUR_REGS).
static __always_inline int count_call(struct proc *p, struct slotent *s, u32 slot, u64 pid_tgid, u32 abi, s64 nr,
                                      REGS *regs, REGS *uregs, void *task) {
    if (count_plain(p, s, slot, pid_tgid, abi, nr, uregs, task))
        return 1;
    if (s->sp.nargs)
        count_args(s, regs, pid_tgid, abi, nr);
    if (s->sp.kind == K_CLOSE)
        forget_socket(p, pid_tgid >> 32, (s32)reg_arg(regs, abi, 0));
    return 0;
}

// A syscall's entry, from the fast gate's syscalls:sys_enter_<name> events (lp_gate_enter, only the calls a
// baseline does not explain; the full trace counts at the exit: on_sys_exit). uregs: the task's saved user
// registers as the attach point gives them, nr the syscall number.
static __always_inline int on_sys_enter(void *ctx, REGS *uregs, s64 nr) {
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    struct proc *p = current_proc(tgid);
    if (!p)
        return 0;
    void *task = CUR_TASK();
    u32 abi = task_abi(task);
    if (abi != ABI_NATIVE && !(p->flags & F_COMPAT))
        p->flags |= F_COMPAT;   // once per process: no atomic needed (a lost race only sets it again)
    split_nr(&abi, &nr);
    struct slotent *s = 0;
    u32 slot = abi * SLOTS + (u32)nr;
    if (nr >= 0 && nr < SLOTS)
        s = slot_entry(slot);
    if (p->flags & F_PENDING) {
        if (!s || s->sp.kind != K_EXEC)
            return 0;
        p->flags &= ~F_PENDING;
    }
    if (!s) {
        count_other(abi, nr);
        return 0;
    }
    count_call(p, s, slot, pid_tgid, abi, nr, CUR_REGS(task, uregs), uregs, task);
    return 0;
}

// --- paths, resolved in the kernel ----------------------------------------------------------


static __always_inline u64 kread(u64 addr) {
    u64 v = 0;
    bpf_probe_read_kernel(&v, 8, (void *)addr);
    return v;
}

// the struct file behind fd in the current task's fd table, or 0 (task: CUR_TASK())
static __always_inline u64 fd_file(void *task, s64 fd) {
    if (fd < 0)
        return 0;
    char *files = TLOAD(task, OFF_TASK_FILES, char *);
    char *fdt = TLOAD(files, OFF_FILES_FDT, char *);
    u32 max = TLOAD(fdt, OFF_FDT_MAX, u32);
    u64 fds = TLOAD(fdt, OFF_FDT_FD, u64);
    if ((u64)fd >= max)
        return 0;
    return kread(fds + (u64)fd * 8);
}

// What the walker program (lp_walk) is to do: the event in `pevs` has its header filled by the caller;
// the walker writes the path, sends the event, then does the second job (rename's new name, a script
// after its interpreter) by tail-calling itself. One walk site for every kind of path keeps the
// verifier's work (and the start-up) small: it checks the bounded walk once, not once per caller.
struct job {
    u64 pathp;        // a struct path to walk (0: none, the name alone)
    u64 name;         // a name to join to it, or alone when absolute (0: none)
    u32 name_user;    // the name is in user memory (else kernel memory)
    u32 dst;          // 0: the path starts buf; ADDR_MAX: after a sockaddr (ST_CWD)
    u32 keyed;        // once sent, remember `key` in `paths`
    u32 next_type;    // 0: no second job; else its event type,
    u64 next_acc;     //   access bits,
    u64 next_pathp;   //   what to walk
    u64 next_name;    //   and the name to join
    struct filekey key;
    // a walk in progress (continued by the next tail call after WALK_CHUNK steps)
    u64 dentry, vfsmnt, mnt, root_mnt, root_dentry;
    u32 off;          // the path is w->b[off, PBUF - 1), its NUL at PBUF - 1
    u32 chunks;       // tail calls the walk has taken
    u32 walking;
    u32 pad;
};

BPF_PERCPU_ARRAY(jobs, struct job, 1);
BPF_PROG_ARRAY(walkers, 1);
BPF_PROG_ARRAY(gate_walkers, 1);

// Up to WALK_CHUNK steps of the walk of j's (vfsmount, dentry) towards the task's root, prepending each
// name to w->b (backwards, ending at PBUF - 1): like the kernel's prepend_path, climb d_parent to the
// mount's root, then continue from the mount point in the parent mount. 1 when the walk ended (the
// task's root met, or ST_OUTSIDE: a namespace's root or a disconnected dentry came first; ST_TRUNC:
// longer than PBUF); 0 when it is to go on (the caller tail-calls the walker again: a short loop is
// verified quickly, and MAX_CHUNKS tail calls allow WALK_CHUNK * MAX_CHUNKS steps).
static __always_inline u32 walk_chunk(struct walkbuf *w, struct job *j, u32 *status) {
    u64 dentry = j->dentry, vfsmnt = j->vfsmnt, mnt = j->mnt;
    u64 root_mnt = j->root_mnt, root_dentry = j->root_dentry;
    u32 off = j->off;
    OPAQUE(off);
    off &= PBUF - 1;
    u32 ended = 0;   // not the loop counter: kept dead after the loop, states of different depths merge
    for (int i = 0; i < WALK_CHUNK; i++) {
        if (dentry == root_dentry && vfsmnt == root_mnt) {
            ended = 1;
            break;
        }
        if (dentry == kread(vfsmnt + OFF_VFSMOUNT_ROOT)) {
            u64 up = kread(mnt + OFF_MOUNT_PARENT);
            if (up == mnt || up == 0) {
                *status |= ST_OUTSIDE;
                ended = 1;
                break;
            }
            dentry = kread(mnt + OFF_MOUNT_MOUNTPOINT);
            mnt = up;
            vfsmnt = up + OFF_MOUNT_MNT;
            continue;
        }
        u64 parent = kread(dentry + OFF_DENTRY_PARENT);
        if (parent == dentry || parent == 0) {
            *status |= ST_OUTSIDE;
            ended = 1;
            break;
        }
        u32 len = 0;
        bpf_probe_read_kernel(&len, 4, (void *)(dentry + OFF_DENTRY_NAME + OFF_QSTR_LEN));
        u64 name = kread(dentry + OFF_DENTRY_NAME + OFF_QSTR_NAME);
        if (len > NAME_MASK || len + 2 > off) {
            *status |= ST_TRUNC;
            ended = 1;
            break;
        }
        off -= len;
        bpf_probe_read_kernel(&w->b[off & (PBUF - 1)], len & NAME_MASK, (void *)name);
        off--;
        w->b[off & (PBUF - 1)] = '/';
        dentry = parent;
        // the same range for `off` on every path to the next iteration: the verifier can then prune
        // (else each iteration's two ways on would double the states it explores)
        OPAQUE(off);
        off &= PBUF - 1;
    }
    j->dentry = dentry;
    j->vfsmnt = vfsmnt;
    j->mnt = mnt;
    j->off = off;
    return ended;
}

static __always_inline struct ev_path *path_event(u32 type, u32 tgid, u32 tid, u32 gen, u32 abi, s32 nr, s64 ret) {
    int zero = 0;
    struct ev_path *e = pevs.lookup(&zero);
    if (!e)
        return 0;
    e->type = type;
    e->tgid = tgid;
    e->tid = tid;
    e->abi = abi;
    e->nr = nr;
    e->gen = gen;
    e->status = 0;
    e->len = 0;
    e->acc = 0;
    e->ret = ret;
    e->sock.domain = e->sock.type = e->sock.protocol = 0xffffffff;
    e->sock.pad = 0;
    fill_comm(e->comm);
    return e;
}

static __always_inline struct job *new_job(void) {
    int zero = 0;
    struct job *j = jobs.lookup(&zero);
    if (j)
        __builtin_memset(j, 0, sizeof(*j));
    return j;
}

// the path (struct path *) a name is relative to: its dirfd's, or the cwd's; 0 for an absolute name
static __always_inline u64 base_of(void *task, s32 dirfd, u64 name, int user) {
    char first = 0;
    if (user)
        lp_read_user(&first, 1, (void *)name);
    else
        bpf_probe_read_kernel(&first, 1, (void *)name);
    if (first == '/')
        return 0;
    if (dirfd == AT_FDCWD_)
        return kread((u64)task + OFF_TASK_FS) + OFF_FS_PWD;
    u64 file = fd_file(task, dirfd);
    return file ? file + OFF_FILE_PATH : 1;   // 1: not a file of this task (no base to join to)
}

static __always_inline int send_path(struct ev_path *e) {
    u32 size = EV_PATH_HDR + (e->len & (PBUF - 1));
    if (size > sizeof(struct ev_path))
        size = sizeof(struct ev_path);
    if (events.ringbuf_output(e, size, rb_flags(e->type == EV_SCRIPT)) != 0) {
        count_lost(L_RINGBUF);
        return -1;
    }
    return 0;
}

// tp: the caller is a classic tracepoint program (the fast gate's): a tail call reaches only a program of
// its own type, so the gate has its own copy of the walker (lp_walk_gate) in its own array
static __always_inline void walk_later(void *ctx, int tp) {
    if (tp)
        gate_walkers.call(ctx, 0);
    else
        walkers.call(ctx, 0);
    count_lost(L_WALK);   // the tail call did not happen (only if the walker is not loaded)
}

static __always_inline int walk(void *ctx, int tp) {
    int zero = 0;
    struct job *j = jobs.lookup(&zero);
    struct ev_path *e = pevs.lookup(&zero);
    struct walkbuf *w = walkbufs.lookup(&zero);
    if (!j || !e || !w)
        return 0;
    void *task = CUR_TASK();
    u32 pos = 0;       // bytes of buf written, without a NUL
    if (j->pathp == 1) {
        e->status |= ST_OUTSIDE;
    } else if (j->pathp) {
        if (!j->walking) {
            u64 fs = kread((u64)task + OFF_TASK_FS);
            j->vfsmnt = kread(j->pathp);
            j->dentry = kread(j->pathp + 8);
            j->mnt = j->vfsmnt - OFF_MOUNT_MNT;
            j->root_mnt = kread(fs + OFF_FS_ROOT);
            j->root_dentry = kread(fs + OFF_FS_ROOT + 8);
            j->off = PBUF - 1;
            j->chunks = 0;
            j->walking = 1;
            w->b[PBUF - 1] = 0;
        }
        if (!walk_chunk(w, j, &e->status)) {
            j->chunks++;
            if (j->chunks < MAX_CHUNKS) {
                walk_later(ctx, tp);   // the rest of the walk in the next tail call
                return 0;
            }
            e->status |= ST_TRUNC;
        }
        j->walking = 0;
        u32 off = j->off;
        if (off == PBUF - 1) {
            off--;
            w->b[off & (PBUF - 1)] = '/';
        }
        u32 n = PBUF - 1 - off;   // the path's length
        if (j->dst) {
            if (n >= PBUF / 2) {
                e->status |= ST_TRUNC;
            } else {
                OPAQUE(n);
                bpf_probe_read_kernel(&e->buf[ADDR_MAX], (n + 1) & (PBUF / 2 - 1), &w->b[off & (PBUF - 1)]);
                pos = n;
            }
        } else {
            OPAQUE(n);
            bpf_probe_read_kernel(e->buf, (n + 1) & (PBUF - 1), &w->b[off & (PBUF - 1)]);
            pos = n;
        }
    }
    if (j->name && !(e->status & (ST_OUTSIDE | ST_TRUNC))) {
        e->status |= ST_JOIN;
        if (pos > 1) {     // "/" + name, not "//" + name
            e->buf[pos & (PBUF - 1)] = '/';
            pos++;
        }
        if (pos >= PBUF / 2) {
            e->status |= ST_TRUNC;
        } else {
            OPAQUE(pos);
            long r;
            if (j->name_user)
                r = lp_read_user_str(&e->buf[pos & (PBUF / 2 - 1)], PBUF / 2, (void *)j->name);
            else
                r = bpf_probe_read_kernel_str(&e->buf[pos & (PBUF / 2 - 1)], PBUF / 2, (void *)j->name);
            if (r >= PBUF / 2)
                e->status |= ST_TRUNC;
            if (r > 0)
                pos += (u32)r - 1;
        }
    }
    e->len = j->dst ? ADDR_MAX + pos + 1 : pos + 1;
    if (send_path(e) == 0 && j->keyed) {   // (not remembered when dropped: a repeat may still get through)
        u8 one = 1;
        paths.update(&j->key, &one);   // a full map only means repeats reach userspace
    }
    if (!j->next_type)
        return 0;
    e->type = j->next_type;
    e->acc = j->next_acc;
    e->status = 0;
    e->len = 0;
    j->pathp = j->next_pathp;
    j->name = j->next_name;
    j->dst = 0;
    j->keyed = 0;
    j->next_type = 0;
    walk_later(ctx, tp);
    return 0;
}

int lp_walk(struct bpf_raw_tracepoint_args *ctx) {
    return walk(ctx, 0);
}

#if HAVE_GATE
int lp_walk_gate(void *ctx) {
    return walk(ctx, 1);
}
#endif

// the key of an opened file (0: not found)
static __always_inline int file_key(u64 file, u64 flags, struct filekey *k) {
    // f_mode and f_path in one read when they are close (6.x: 4 and 64)
#define FSTART (OFF_FILE_MODE & ~7)
#if OFF_FILE_PATH > OFF_FILE_MODE && OFF_FILE_PATH + 16 - FSTART <= 96
    u64 f[(OFF_FILE_PATH + 16 - FSTART + 7) / 8];
    if (bpf_probe_read_kernel(f, sizeof(f), (void *)(file + FSTART)) != 0)
        return 0;
    u32 fmode = *(u32 *)((char *)f + OFF_FILE_MODE - FSTART);
    k->mnt = f[(OFF_FILE_PATH - FSTART) / 8];
    k->dentry = f[(OFF_FILE_PATH - FSTART) / 8 + 1];
#else
    u32 fmode = 0;
    bpf_probe_read_kernel(&fmode, 4, (void *)(file + OFF_FILE_MODE));
    k->mnt = kread(file + OFF_FILE_PATH);
    k->dentry = kread(file + OFF_FILE_PATH + 8);
#endif
#undef FSTART
#if OFF_DENTRY_NAME == OFF_DENTRY_PARENT + 8
    u64 d[2];   // d_parent, then d_name's hash_len
    if (bpf_probe_read_kernel(d, sizeof(d), (void *)(k->dentry + OFF_DENTRY_PARENT)) != 0)
        return 0;
    k->parent = d[0];
    k->hash_len = d[1];
#else
    k->parent = kread(k->dentry + OFF_DENTRY_PARENT);
    k->hash_len = kread(k->dentry + OFF_DENTRY_NAME);
#endif
    k->acc = OPEN_ACC(flags & 3) | ((fmode & FMODE_CREATED_) ? ACC_CREATE : 0);
    return 1;
}

static __always_inline int same_file(struct filekey *a, struct filekey *b) {
    return a->dentry == b->dentry && a->mnt == b->mnt && a->parent == b->parent && a->hash_len == b->hash_len &&
           a->acc == b->acc;
}

// an open that returned fd `ret`: the opened file's path and access, once per (file, access)
static __always_inline void open_fact(void *ctx, int tp, REGS *regs, void *task, struct spec *sp, struct proc *p, u32 tgid,
                                      u32 tid, u32 abi, s32 nr, s64 ret) {
    u64 flags = CREAT_FLAGS;
    if (sp->kind == K_OPENAT2) {
        u64 how = reg_arg(regs, abi, sp->fidx > 5 ? 5 : sp->fidx);
        lp_read_user(&flags, 8, (void *)how);
    } else if (sp->fidx != NO_ARG) {
        flags = reg_arg(regs, abi, sp->fidx > 5 ? 5 : sp->fidx);
    }
    u64 file = fd_file(task, ret);
    struct filekey k;
    if (!file || !file_key(file, flags, &k)) {
        count_lost(L_FDS);
        return;
    }
    // sent already? This CPU's latest answer first (a server opens the same file again and again),
    // then the map of all sent
    int zero = 0;
    struct filekey *last = lastopen.lookup(&zero);
    if (last && same_file(last, &k))
        return;
    if (paths.lookup(&k)) {
        if (last)
            *last = k;
        return;
    }
    struct job *j = new_job();
    if (!j)
        return;
    struct ev_path *e = path_event(EV_PATH, tgid, tid, p->gen, abi, nr, ret);
    if (!e)
        return;
    e->acc = k.acc;
    j->key = k;
    j->pathp = file + OFF_FILE_PATH;
    j->keyed = 1;
    walk_later(ctx, tp);
}

// a call that names paths without opening them (mkdir, unlink, rename, ...): each named path
static __always_inline void name_facts(void *ctx, int tp, REGS *regs, void *task, struct spec *sp, struct proc *p, u32 tgid,
                                       u32 tid, u32 abi, s32 nr, s64 ret) {
    if (sp->pidx[0] == NO_ARG)
        return;
    struct job *j = new_job();
    struct ev_path *e = path_event(EV_PATH, tgid, tid, p->gen, abi, nr, ret);
    if (!j || !e)
        return;
    u8 pi = sp->pidx[0], di = sp->didx[0];
    j->name = reg_arg(regs, abi, pi > 5 ? 5 : pi);
    j->name_user = 1;
    j->pathp = base_of(task, di == NO_ARG ? AT_FDCWD_ : (s32)reg_arg(regs, abi, di > 5 ? 5 : di), j->name, 1);
    e->acc = sp->acc[0];
    pi = sp->pidx[1];
    di = sp->didx[1];
    if (pi != NO_ARG) {
        j->next_type = EV_PATH;
        j->next_acc = sp->acc[1];
        j->next_name = reg_arg(regs, abi, pi > 5 ? 5 : pi);
        j->next_pathp = base_of(task, di == NO_ARG ? AT_FDCWD_ : (s32)reg_arg(regs, abi, di > 5 ? 5 : di),
                                j->next_name, 1);
    }
    walk_later(ctx, tp);
}

// bind/connect (attempted: a failed connect is a need too); a relative unix path gets the cwd
static __always_inline void addr_fact(void *ctx, int tp, REGS *regs, void *task, struct proc *p, u32 tgid, u32 tid, u32 abi,
                                      s32 nr, s64 ret) {
    struct ev_path *e = path_event(EV_ADDR, tgid, tid, p->gen, abi, nr, ret);
    if (!e)
        return;
    s32 fd = (s32)reg_arg(regs, abi, 0);
    u64 addr = reg_arg(regs, abi, 1);
    u32 alen = (u32)reg_arg(regs, abi, 2);
    if (alen > ADDR_MAX)
        alen = ADDR_MAX;
    e->acc = alen;
    __builtin_memset(e->buf, 0, ADDR_MAX);
    lp_read_user(e->buf, ADDR_MAX, (void *)addr);
    struct sockkey sk = {.tgid = tgid, .fd = fd};
    struct sockinfo *si = sockets.lookup(&sk);
    if (si)
        e->sock = *si;
    e->len = ADDR_MAX;
    if (e->buf[0] == 1 && e->buf[1] == 0 && e->buf[2] != 0 && e->buf[2] != '/') {   // AF_UNIX, relative path
        struct job *j = new_job();
        if (j) {
            e->status = ST_CWD;
            j->pathp = kread((u64)task + OFF_TASK_FS) + OFF_FS_PWD;
            j->dst = ADDR_MAX;
            walk_later(ctx, tp);
            return;
        }
    }
    send_path(e);
}

// failures counted per (abi, nr, errno): a run of the same errno stays in the slot's entry on this CPU
static __always_inline void add_errno(u32 abi, s32 nr, s32 err, u64 n) {
    struct errkey k = {.abi = abi, .nr = nr, .err = err};
    u64 *c = errnos.lookup(&k);
    if (c) {
        __sync_fetch_and_add(c, n);
    } else if (errnos.insert(&k, &n) != 0) {
        c = errnos.lookup(&k);
        if (c)
            __sync_fetch_and_add(c, n);
        else
            count_lost(L_ERRNO);
    }
}

static __always_inline void count_errno(struct slotent *s, u32 abi, s32 nr, s32 err) {
    if (s->err == err) {
        s->errn++;
        return;
    }
    if (s->errn)
        add_errno(abi, nr, s->err, s->errn);
    s->err = err;
    s->errn = 1;
}

// the signal frame a sigreturn of this thread returns from (SIGFRAME_*; -1: none pushed while traced)
static __always_inline int pop_frame(u32 tid) {
    struct frames *f = frames.lookup(&tid);
    if (!f || f->depth == 0)
        return -1;
    int kind = f->kinds & 3;
    f->kinds >>= 2;
    f->depth--;
    return kind;
}

// A syscall's return. The full trace (full = 1: lp_sys_exit on raw_syscalls:sys_exit, every call of every
// task) records the whole call here: the registers still hold its number and arguments, and one program per
// call instead of two halves the cost of every task's calls (an empty program at sys_enter and sys_exit is
// the floor this attach method is measured against). What an exit cannot show comes from elsewhere: exit and
// exit_group never return (sched_process_exit reads them from the registers), a sigreturn shows no number
// (the frame signal_deliver pushed), an exec returns in the new image with the new image's execve number
// (sched_process_exec, with the call task_rename saw). The gate (full = 0: lp_gate_exit on its
// syscalls:sys_exit_<name> events; tp: a classic tracepoint program) counted the call at its entry and takes
// only the result here. uregs: the task's saved user registers as the attach point gives them, ret the
// call's result.
static __always_inline int on_sys_exit(void *ctx, int tp, REGS *uregs, s64 ret, int full) {
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    u32 tid = (u32)pid_tgid;
    struct proc *p = full ? current_proc(tgid) : find_proc(tgid);
    if (!p)
        return 0;
    void *task = CUR_TASK();
    REGS *regs = CUR_REGS(task, uregs);
    s64 nr = TLOAD(regs, __builtin_offsetof(REGS, orig_ax), s64);
    if (p->flags & (F_PENDING | F_EXECD)) {
        calibrate(uregs, task);     // before the command's exec, which task_rename reads through task_uregs
        if (p->flags & F_EXECD) {
            p->flags &= ~F_EXECD;   // the first return after an exec is its own (no other thread is left)
            if (ret == 0)
                return 0;           // counted at sched_process_exec, in the image that called it
        }
        if ((p->flags & F_PENDING) && !full)
            return 0;
    }
    // the ABI: the task's (TS_COMPAT is still set at an i386 call's exit); the gate reads it only once
    // the process made an i386 call (its entry set F_COMPAT); x32 is told by the number itself
    u32 abi = ABI_NATIVE;
    if (full || (p->flags & F_COMPAT))
        abi = task_abi(task);
    if (abi != ABI_NATIVE && !(p->flags & F_COMPAT))
        p->flags |= F_COMPAT;   // (full) once per process; userspace reads it for a call in flight at the end
    split_nr(&abi, &nr);
    if (abi == ABI_I386)
        ret = (s32)ret;
    int failed = ret < 0 && ret > -4096;
    if (full && nr == -1) {
        if (p->flags & F_PENDING)
            return 0;
        int k = pop_frame(tid);
        if (k < 0 && ret != -38)
            // no frame known (pushed before the trace began: --pid, --cgroup): a sigreturn all the same, as
            // a call with no number returns -ENOSYS and a sigreturn the frame's saved ax
            k = abi == ABI_I386 ? SIGFRAME_IA32_RT : SIGFRAME_NATIVE;
        u32 *sl = 0;
        if (k >= 0)
            sl = sigret.lookup(&k);
        if (sl && *sl) {   // a sigreturn: counted, no result (as ptrace, which sees no result of it)
            u32 slot = *sl - 1;
            struct slotent *s = slot_entry(slot);
            if (s)
                count_plain(p, s, slot, pid_tgid, slot / SLOTS, slot % SLOTS, uregs, task);
            return 0;
        }
    }
    if (nr < 0 || nr >= SLOTS) {
        if (p->flags & F_PENDING)
            return 0;
        struct nrkey k = {.abi = abi, .nr = (s32)nr};
        struct nrstat *st = other.lookup(&k);
        if (st) {
            if (full)
                __sync_fetch_and_add(&st->count, 1);
            __sync_fetch_and_add(&st->results, 1);
            if (!failed)
                __sync_fetch_and_add(&st->ok, 1);
        } else if (full) {
            struct nrstat one = {.count = 1, .results = 1, .ok = !failed};
            if (other.insert(&k, &one) != 0)
                count_lost(L_OTHER);
        }
        if (failed)
            add_errno(abi, (s32)nr, (s32)-ret, 1);
        return 0;
    }
    u32 slot = abi * SLOTS + (u32)nr;
    struct slotent *s = slot_entry(slot);
    if (!s)
        return 0;
    u8 kind = s->sp.kind;
    if (ret == 0 && kind == K_FORK)
        return 0;   // the new task returning from clone/fork: the parent's return is the result
    if (p->flags & F_PENDING) {   // (full) the command's launcher: recorded from its exec on
        if (kind != K_EXEC)
            return 0;
        p->flags &= ~F_PENDING;   // a failed exec (a successful one cleared it at sched_process_exec)
    }
    if (full) {
        if (count_call(p, s, slot, pid_tgid, abi, nr, regs, uregs, task))
            return 0;   // fast gate without gate.py (fill_known): the baseline explains it
    } else if (s->known) {
        return 0;   // fast gate: results of calls the baseline explains are not sampled
    }
    s->results++;
    if (failed) {
        count_errno(s, abi, (s32)nr, (s32)-ret);
    } else {
        s->ok++;
    }
    if (kind == K_NONE)
        return 0;
    // the arguments are read here, at exit: the registers still hold them, and the user memory they
    // point to has been paged in by the syscall itself (at sys_enter a string in a page not yet
    // touched cannot be read from BPF)
    if (kind == K_BIND || kind == K_CONNECT) {
        addr_fact(ctx, tp, regs, task, p, tgid, tid, abi, (s32)nr, ret);
        return 0;
    }
    if (failed)
        return 0;   // a failed open or path call touched nothing (both backends)
    if (kind == K_OPEN || kind == K_CREAT || kind == K_OPENAT2) {
        open_fact(ctx, tp, regs, task, &s->sp, p, tgid, tid, abi, (s32)nr, ret);
    } else if (kind == K_PATHOP) {
        name_facts(ctx, tp, regs, task, &s->sp, p, tgid, tid, abi, (s32)nr, ret);
    } else if (kind == K_SOCKET) {
        struct sockkey sk = {.tgid = tgid, .fd = (s32)ret};
        struct sockinfo si = {.domain = (u32)reg_arg(regs, abi, 0), .type = (u32)reg_arg(regs, abi, 1),
                              .protocol = (u32)reg_arg(regs, abi, 2)};
        if (sockets.update(&sk, &si) == 0)
            __sync_fetch_and_or(&p->sockfds, 1ULL << (ret < 63 ? ret : 63));
    }
    return 0;
}

// --- the attach points of the per-call programs --------------------------------------------
// Full trace: raw_syscalls sys_exit, every call of every task on the machine (attaching anything to
// raw_syscalls puts every task on the syscall slow path: the floor of this attach method).
int lp_sys_exit(struct bpf_raw_tracepoint_args *ctx) {
    return on_sys_exit(ctx, 0, (REGS *)ctx->args[0], ctx->args[1], 1);
}

#if HAVE_GATE
// The fast gate (check --baseline): the same programs on the syscalls:sys_enter_<name> and
// sys_exit_<name> events of only the native syscalls the baseline does not explain, attached by gate.py
// at their first call. The kernel tests each call's number against its bitmap of enabled events before it
// runs any program: a call the baseline explains costs that test and nothing else, and is not seen.
// What the kernel hands these programs (perf_call_bpf_enter/exit, kernel/trace/trace_syscalls.c): the
// number and the arguments or the result; the user registers are the task's own (bpf_task_pt_regs).
// These events never fire for i386/x32 calls or numbers without a syscall (gate.py's listener sees them).
struct gate_enter_args {
    u64 hidden;       // a pointer the kernel puts there (not the user registers)
    s32 nr;
    s32 pad;
    u64 args[6];
};

struct gate_exit_args {
    u64 hidden;
    s32 nr;
    s32 pad;
    s64 ret;
};

int lp_gate_enter(struct gate_enter_args *ctx) {
    REGS *regs = (REGS *)lp_task_pt_regs(lp_current_task_btf());
    return on_sys_enter(ctx, regs, ctx->nr);
}

int lp_gate_exit(struct gate_exit_args *ctx) {
    REGS *regs = (REGS *)lp_task_pt_regs(lp_current_task_btf());
    return on_sys_exit(ctx, 1, regs, ctx->ret, 0);
}
#endif

RAW_TRACEPOINT_PROBE(sched_process_fork) {
    // args: (struct task_struct *parent, struct task_struct *child); runs in the parent.
    // (cgroup mode: children of a tracked process are registered here too, so that their
    // executable is known; their syscalls are still kept only while they are in the cgroup)
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    struct proc *pp = find_proc(parent);
    if (!pp)
        return 0;
    u32 child = 0, child_tgid = 0;
    bpf_probe_read_kernel(&child, 4, (char *)ctx->args[1] + OFF_PID);
    bpf_probe_read_kernel(&child_tgid, 4, (char *)ctx->args[1] + OFF_TGID);
    if (child == 0 || child != child_tgid)
        return 0;   // a new thread: its process is tracked already
    u32 pgen = pp->gen;
    if (!new_proc(child))
        return 0;
    struct ev_small *e = events.ringbuf_reserve(sizeof(struct ev_small));
    if (e) {
        __builtin_memset(e, 0, sizeof(*e));
        e->type = EV_FORK;
        e->tgid = child;
        e->tid = child;
        e->parent = parent;
        e->pgen = pgen;
        fill_comm(e->comm);
        events.ringbuf_submit(e, rb_flags(0));
    } else {
        count_lost(L_RINGBUF);
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_exec) {
    // args: (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm); the new image is in place
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    struct proc *p = find_proc(tgid);
    if (!p)
        return 0;
    int zero = 0;
    struct ev_big *e = bevs.lookup(&zero);
    if (!e)
        return 0;
    void *task = CUR_TASK();
    u64 bprm = ctx->args[2];
    u32 tid = (u32)pid_tgid;
    frames.delete(&tid);   // the old image's signal frames are gone with its stack
    if (p->exec_slot) {
        // the full trace: the exec call, counted here in the image that made it (its return, in the new
        // image, shows the new image's execve number: SET_PERSONALITY rewrote orig_ax)
        u32 slot = p->exec_slot - 1;
        p->exec_slot = 0;
        struct slotent *s = slot_entry(slot);
        if (s) {
            REGS *regs = task_uregs(task);
            p->flags = (p->flags & ~F_PENDING) | F_EXECD;
            if (!count_plain(p, s, slot, pid_tgid, slot / SLOTS, slot % SLOTS, regs, task)) {
                s->results++;
                s->ok++;
            }
        }
    }
    u32 gen = p->gen;
    e->type = EV_EXEC;
    e->tgid = tgid;
    e->tid = (u32)pid_tgid;
    e->abi = 0;
    e->nr = (s32)ctx->args[1];
    e->gen = gen;
    e->status = 0;
    e->len = 0;
    e->acc = 0;
    e->ret = 0;
    e->sock.domain = e->sock.type = e->sock.protocol = e->sock.pad = 0;
    fill_comm(e->comm);
    __builtin_memcpy(e->seen, p->seen, sizeof(e->seen));
    if (events.ringbuf_output(e, EV_BIG_HDR, rb_flags(0)) != 0) {
        count_lost(L_RINGBUF);
        return 0;   // without the event the old image's syscalls stay in the bitmap and count for the new one
    }
    // the new image starts with an empty bitmap (its own attribution)
    __builtin_memset(p->seen, 0, sizeof(p->seen));
    p->gen++;
    // the executable is the file the new image maps (mm->exe_file), never a name looked up later (EV_EXE);
    // a script (binfmt_script/misc changed bprm->interp): the kernel ran its interpreter (the exe); the
    // script is the name the exec was given, joined to the cwd (its file is closed by now) (EV_SCRIPT)
    struct job *j = new_job();
    struct ev_path *x = path_event(EV_EXE, tgid, (u32)pid_tgid, gen, 0, 0, 0);
    if (!j || !x)
        return 0;
    u64 exe = kread(kread((u64)task + OFF_TASK_MM) + OFF_MM_EXE_FILE);
    j->pathp = exe ? exe + OFF_FILE_PATH : 1;
    u64 filename = kread(bprm + OFF_BPRM_FILENAME);
    if (filename && filename != kread(bprm + OFF_BPRM_INTERP)) {
        j->next_type = EV_SCRIPT;
        j->next_name = filename;
        j->next_pathp = base_of(task, AT_FDCWD_, filename, 0);
    }
    walk_later(ctx, 0);
    return 0;
}

// the full trace: an exec call in progress (task_rename: exec names the task after its file before it sets
// the new image's personality, which rewrites orig_ax; prctl(PR_SET_NAME) renames too, and a write to
// /proc/PID/comm renames another task)
TRACEPOINT_PROBE(task, task_rename) {
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((u32)args->pid != (u32)pid_tgid)
        return 0;
    struct proc *p = find_proc(pid_tgid >> 32);
    if (!p || !full_trace())
        return 0;
    void *task = CUR_TASK();
    u32 abi, slot = 0;
    s64 nr;
    struct slotent *s = call_in_progress(task, task_uregs(task), &abi, &nr, &slot);
    if (s && s->sp.kind == K_EXEC)
        p->exec_slot = slot + 1;
    return 0;
}

// the full trace: a handler's signal frame (SIG_DFL and SIG_IGN push none); its kind tells which call
// returns from it (SA_IA32_ABI / SA_X32_ABI: the kernel's marks of a handler an i386 / x32 call installed)
#define SA_SIGINFO_ 4
#define SA_X32_ABI_ 0x01000000
#define SA_IA32_ABI_ 0x02000000
TRACEPOINT_PROBE(signal, signal_deliver) {
    if (args->sa_handler <= 1)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct proc *p = find_proc(pid_tgid >> 32);
    if (!p || (p->flags & F_PENDING) || !full_trace())
        return 0;
    u32 tid = (u32)pid_tgid;
    u64 fl = args->sa_flags;
    u64 kind = (fl & SA_IA32_ABI_) ? ((fl & SA_SIGINFO_) ? SIGFRAME_IA32_RT : SIGFRAME_IA32)
                                   : (fl & SA_X32_ABI_) ? SIGFRAME_X32 : SIGFRAME_NATIVE;
    struct frames *f = frames.lookup(&tid);
    if (!f) {
        struct frames none = {};
        frames.insert(&tid, &none);
        f = frames.lookup(&tid);
        if (!f) {
            count_lost(L_OTHER);
            return 0;
        }
    }
    f->kinds = (f->kinds << 2) | kind;   // deeper than 32: the oldest are taken for native ones
    f->depth++;
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    u64 pt = bpf_get_current_pid_tgid();
    u32 tgid = pt >> 32;
    struct proc *p = find_proc(tgid);
    if (!p)
        return 0;
    // every thread: its signal frames go; exit and exit_group, which never return, are counted here
    u32 tid = (u32)pt;
    frames.delete(&tid);
    if (!(p->flags & F_PENDING) && full_trace()) {
        void *task = CUR_TASK();
        REGS *regs = task_uregs(task);
        u32 abi, slot = 0;
        s64 nr;
        struct slotent *s = call_in_progress(task, regs, &abi, &nr, &slot);
        if (s && s->noret)
            count_plain(p, s, slot, pt, abi, nr, regs, task);
    }
#if HAVE_GROUP_DEAD
    if (!args->group_dead)
        return 0;
#else
    if ((u32)pt != tgid)
        return 0;
#endif
    drop_proc(tgid);
    int zero = 0;
    struct ev_big *e = bevs.lookup(&zero);
    if (!e)
        return 0;
    e->type = EV_EXIT;
    e->tgid = tgid;
    e->tid = (u32)bpf_get_current_pid_tgid();
    e->abi = 0;
    e->nr = 0;
    e->gen = p->gen;
    e->status = 0;
    e->len = 0;
    e->acc = 0;
    e->ret = 0;
    fill_comm(e->comm);
    __builtin_memcpy(e->seen, p->seen, sizeof(e->seen));
    if (events.ringbuf_output(e, EV_BIG_HDR, rb_flags(WAKE_ON_EXIT)) != 0) {
        count_lost(L_RINGBUF);
        return 0;   // still live: userspace reads its bitmap at the end
    }
    p->live = 0;
    return 0;
}

static __always_inline void record_cap(void *ctx, s32 cap, s32 ret, u64 check_cred, u32 audit) {
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    struct proc *p = find_proc(tgid);
    if (!p)
        return;
    void *task = CUR_TASK();
    struct capkey k = {};
    k.tgid = tgid;
    k.gen = p->gen;
    k.cap = cap;
    k.denied = ret != 0;
    k.audit = audit;
    u64 cred = 0;
    bpf_probe_read_kernel(&cred, 8, (char *)task + OFF_CRED);
    k.other_cred = cred != check_cred;
    u32 abi, slot = 0;
    s64 nr;
    struct slotent *s = call_in_progress(task, task_uregs(task), &abi, &nr, &slot);
    k.abi = abi;
    k.nr = (s32)nr;
    if ((p->flags & F_PENDING) && (!s || s->sp.kind != K_EXEC))
        return;   // the command's launcher: only the checks of its exec
    long n = bpf_get_stack(ctx, k.ip, sizeof(k.ip), 0);
    k.nframes = n > 0 ? ((u32)n) >> 3 : 0;
    u64 *c = caps.lookup(&k);
    if (c) {
        __sync_fetch_and_add(c, 1);
    } else {
        u64 one = 1;
        if (caps.insert(&k, &one) != 0) {
            c = caps.lookup(&k);
            if (c)
                __sync_fetch_and_add(c, 1);
            else
                count_lost(L_CAPS);
        }
    }
}

#if CAP_KPROBE
// kernels without the capability:cap_capable tracepoint: a kprobe and a kretprobe on
// int cap_capable(const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts),
// which also show the audit option itself
#if COMPAT_X86
#define KP_ARG1(x) (((REGS *)(x))->di)
#define KP_ARG3(x) (((REGS *)(x))->dx)
#define KP_ARG4(x) (((REGS *)(x))->cx)
#define KP_RC(x) (((REGS *)(x))->ax)
#else
#define KP_ARG1(x) PT_REGS_PARM1(x)
#define KP_ARG3(x) PT_REGS_PARM3(x)
#define KP_ARG4(x) PT_REGS_PARM4(x)
#define KP_RC(x) PT_REGS_RC(x)
#endif
#define CAP_OPT_NOAUDIT 2
struct capcall {
    u64 cred;
    s32 cap;
    u32 opts;
};
BPF_HASH(capcalls, u32, struct capcall, 4096);

int lp_cap_entry(struct pt_regs *ctx) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!find_proc(tgid))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct capcall c = {};
    c.cred = KP_ARG1(ctx);
    c.cap = (s32)KP_ARG3(ctx);
    c.opts = (u32)KP_ARG4(ctx);
    capcalls.update(&tid, &c);
    return 0;
}

int lp_cap_return(struct pt_regs *ctx) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct capcall *c = capcalls.lookup(&tid);
    if (!c)
        return 0;
    struct capcall call = *c;
    capcalls.delete(&tid);
    record_cap(ctx, call.cap, (s32)KP_RC(ctx), call.cred, (call.opts & CAP_OPT_NOAUDIT) ? 2 : 1);
    return 0;
}
#else
TRACEPOINT_PROBE(capability, cap_capable) {
    record_cap(args, args->cap, args->ret, (u64)args->cred, 0);
    return 0;
}
#endif
