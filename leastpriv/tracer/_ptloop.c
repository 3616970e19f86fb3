/* leastpriv.tracer._ptloop: the common stops of the ptrace backend's hot loop, in C.
 *
 * A twin of the first half of ptrace.py's _Session._loop, working on the same Python
 * objects (tables, entry lists, pending, extra, roots, open_access, the Recording builder's files, the
 * ctypes SyscallInfo struct). Each entry list says in its FAST slot which of its handlers are done here
 * (the enum F_* below). It handles:
 *   - a seccomp stop of a known task whose entry exists: count it; with _h_args count the tracked
 *     arguments' values; then PTRACE_SYSCALL + pending[tid] = entry when the call is sampled
 *     (c <= sample_first or no success yet or c a power of two), else PTRACE_CONT; an open/openat
 *     without O_CREAT: extra[tid] = (flags, None), always PTRACE_SYSCALL;
 *   - a syscall-exit stop of a pending entry without ON_EXIT: count the result
 *     (OK, or ERRNOS[errno], kernel-internal restart errnos not counted), PTRACE_CONT; of an open:
 *     the same, and when it succeeded, the task's root is ours and readlink /proc/PID/fd/RVAL is an
 *     absolute path of a file that still has a name: files[path] |= open_access[(flags, created)].
 * Every other stop goes back to Python, which handles it as the pure-Python loop does:
 *   (WAITED, pid, status)   only waitpid was done (any other stop, or GET_SYSCALL_INFO failed);
 *   (INFO, pid, status)     info holds this stop's PTRACE_GET_SYSCALL_INFO; nothing was changed;
 *   (FAILED, pid, request)  the stop was handled but resuming it failed (Python learns errno);
 *   (TICK, 0, 0)            another 1024 syscalls counted (progress);
 *   (NONE, 0, 0)            no tracee left (ECHILD).
 * The last element of every answer is the running syscall count, handed back at the next call.
 * Nothing is changed before it is certain that the stop is a common one, so that Python never
 * sees half a stop. waitpid releases the GIL when another Python thread exists (the deferred-signal
 * timer thread runs meanwhile; see alone());
 * Python signal handlers run before each wait and when it is interrupted, and their exception
 * is raised from here. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

/* uapi numbers (include/uapi/linux/ptrace.h), as in ptrace_abi.py */
#define REQ_CONT 7
#define REQ_SYSCALL 24
#define REQ_GET_SYSCALL_INFO 0x420e
#define INFO_EXIT 2
#define WALL 0x40000000
#define STATUS_SECCOMP (0x7f | ((5 | (7 << 8)) << 8))   /* SIGTRAP | PTRACE_EVENT_SECCOMP << 8 */
#define STATUS_SYSCALL (0x7f | ((5 | 0x80) << 8))       /* SIGTRAP | 0x80 (TRACESYSGOOD) */

/* entry list slots: ptrace.py's COUNT, RESULTS, OK, ERRNOS, NAME, ON_ENTRY, ON_EXIT, ARGIDX, ARGS, IGNORE, FAST */
enum { COUNT, RESULTS, OK, ERRNOS, NAME, ON_ENTRY, ON_EXIT, ARGIDX, ARGS, IGNORE, FAST, N_SLOTS };
/* e[FAST]: which of its handlers this loop does (ptrace.py's FAST_* set it when the entry is made):
 *   F_PYTHON    none: every stop of the call goes to Python;
 *   F_PLAIN     no entry handler: count, sample; its exit (if sampled) counts the result;
 *   F_NORESULT  _h_noresult: count, never sampled;
 *   F_ARGS      _h_args: count the tracked arguments' values in e[ARGS], then as F_PLAIN;
 *   F_OPEN + i  on_open/_x_open of open/openat with the flags in args[i] (see entry_stop, open_result). */
enum { F_PYTHON, F_PLAIN, F_NORESULT, F_ARGS, F_OPEN = 8 };
enum { WAITED, INFO, FAILED, TICK, NONE };

/* struct ptrace_syscall_info (uapi), flattened like ptrace_abi.SyscallInfo: nr and rval share offset 24 */
struct info {
    uint8_t op, reserved;
    uint16_t flags;
    uint32_t arch;
    uint64_t ip, sp;
    union { uint64_t nr; int64_t rval; };
    uint64_t args[6];
    uint32_t ret_data, reserved2;
};
_Static_assert(sizeof(struct info) == 88, "struct ptrace_syscall_info is 88 bytes");

static long pt(long req, pid_t pid, unsigned long addr, unsigned long data)
{
    return ptrace((enum __ptrace_request)req, pid, (void *)addr, (void *)data);
}

/* list[i] += 1 on a list of Python ints; the new value in *out */
static int incr(PyObject *list, Py_ssize_t i, long long *out)
{
    PyObject *old = PyList_GET_ITEM(list, i);
    long long v = PyLong_AsLongLong(old);
    if (v == -1 && PyErr_Occurred())
        return -1;
    PyObject *n = PyLong_FromLongLong(v + 1);
    if (n == NULL)
        return -1;
    PyList_SET_ITEM(list, i, n);
    Py_DECREF(old);
    if (out)
        *out = v + 1;
    return 0;
}

/* An entry list the C loop may handle: a list of the expected shape (anything else goes to Python). */
static int is_entry(PyObject *e)
{
    return e != NULL && PyList_CheckExact(e) && PyList_GET_SIZE(e) >= N_SLOTS;
}

/* The entry of a seccomp stop: tables[pid][nr] (native ABI) or tables[pid][(arch, nr)]; NULL (no error
 * set) when Python must handle the stop. Borrowed. */
static PyObject *entry_of(PyObject *tables, PyObject *pidobj, const struct info *in, unsigned long native)
{
    PyObject *tab = PyDict_GetItemWithError(tables, pidobj);
    if (tab == NULL || !PyDict_CheckExact(tab))
        return NULL;
    PyObject *key = in->arch == native ? PyLong_FromUnsignedLongLong(in->nr)
                                       : Py_BuildValue("(kK)", (unsigned long)in->arch,
                                                       (unsigned long long)in->nr);
    if (key == NULL)
        return NULL;
    PyObject *e = PyDict_GetItemWithError(tab, key);
    Py_DECREF(key);
    return is_entry(e) ? e : NULL;
}

/* The Python objects run() works on besides the stop (ptrace.py's _Session attributes of the same names). */
struct ctx {
    PyObject *tables, *pending, *restart, *extra, *roots, *open_access, *files, *root_slash;
    unsigned long native;
    long long sample_first;
    pid_t last;          /* the task of the latest stop and its Python int (most stops are of the same task) */
    PyObject *lastobj;
};

enum { DONE, BACK, ERROR };   /* a stop handled here, handed back to Python unchanged, or an exception set */

/* e[COUNT] += 1, then the sampling rule of ptrace.py's _sample: 1 = see the result (PTRACE_SYSCALL) */
static int count_and_sample(const struct ctx *x, PyObject *e)
{
    long long c;
    int ok = PyObject_IsTrue(PyList_GET_ITEM(e, OK));   /* an int: no Python code runs */
    if (ok < 0 || incr(e, COUNT, &c) < 0)
        return -1;
    return c <= x->sample_first || !ok || !(c & (c - 1));
}

/* _h_args: the tracked arguments' values, a tuple of Python ints (u64 as the ctypes array gives them, no mask),
 * counted in e[ARGS]. The tuple is built first (BACK if ARGIDX is not what Python makes), counted after. */
static PyObject *arg_values(PyObject *e, const struct info *in)
{
    PyObject *idx = PyList_GET_ITEM(e, ARGIDX);
    if (!PyTuple_CheckExact(idx) || !PyDict_CheckExact(PyList_GET_ITEM(e, ARGS)))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(idx);
    PyObject *vals = PyTuple_New(n);
    if (vals == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = PyTuple_GET_ITEM(idx, k);
        long i = PyLong_CheckExact(o) ? PyLong_AsLong(o) : -1;
        PyObject *v = 0 <= i && i < 6 ? PyLong_FromUnsignedLongLong(in->args[i]) : NULL;
        if (v == NULL) {
            Py_DECREF(vals);
            return NULL;
        }
        PyTuple_SET_ITEM(vals, k, v);
    }
    return vals;
}

/* d[key] = d.get(key, 0) + 1 for any key */
static int count_key(PyObject *d, PyObject *k)
{
    PyObject *old = PyDict_GetItemWithError(d, k);   /* borrowed */
    long long v = 0;
    if (old != NULL) {
        v = PyLong_AsLongLong(old);
        if (v == -1 && PyErr_Occurred())
            return -1;
    } else if (PyErr_Occurred())
        return -1;
    PyObject *n = PyLong_FromLongLong(v + 1);
    if (n == NULL)
        return -1;
    int r = PyDict_SetItem(d, k, n);
    Py_DECREF(n);
    return r;
}

/* A seccomp stop. *req: the resume request when DONE. */
static int entry_stop(const struct ctx *x, PyObject *pidobj, const struct info *in, long *req)
{
    PyObject *e = entry_of(x->tables, pidobj, in, x->native);
    if (e == NULL)
        return PyErr_Occurred() ? ERROR : BACK;
    PyObject *how = PyList_GET_ITEM(e, FAST);
    long fast = PyLong_CheckExact(how) ? PyLong_AsLong(how) : F_PYTHON;
    int sampled;
    switch (fast) {
    case F_PLAIN:   /* no entry handler */
        break;
    case F_NORESULT:   /* _h_noresult: counted, never sampled */
        if (incr(e, COUNT, NULL) < 0)
            return ERROR;
        *req = REQ_CONT;
        return DONE;
    case F_ARGS: {   /* _h_args */
        PyObject *vals = arg_values(e, in);
        if (vals == NULL)
            return PyErr_Occurred() ? ERROR : BACK;
        int bad = count_key(PyList_GET_ITEM(e, ARGS), vals) < 0;
        Py_DECREF(vals);
        if (bad)
            return ERROR;
        break;
    }
    default: {
        if (fast < F_OPEN || fast >= F_OPEN + 6)
            return BACK;
        /* on_open of open/openat: its flags an argument; O_CREAT (not O_TMPFILE) needs the existence check
         * (Python); otherwise extra[pid] = (flags, None) and always see the result */
        unsigned long long flags = in->args[fast - F_OPEN];
        if ((flags & O_CREAT) && (flags & O_TMPFILE) != O_TMPFILE)
            return BACK;
        PyObject *t = Py_BuildValue("(KO)", flags, Py_None);
        if (t == NULL)
            return ERROR;
        int bad = PyDict_SetItem(x->extra, pidobj, t) < 0;
        Py_DECREF(t);
        if (bad || incr(e, COUNT, NULL) < 0 || PyDict_SetItem(x->pending, pidobj, e) < 0)
            return ERROR;
        *req = REQ_SYSCALL;
        return DONE;
    }
    }
    sampled = count_and_sample(x, e);
    if (sampled < 0)
        return ERROR;
    if (sampled && PyDict_SetItem(x->pending, pidobj, e) < 0)
        return ERROR;
    *req = sampled ? REQ_SYSCALL : REQ_CONT;
    return DONE;
}

/* count a result in e: RESULTS/OK, or RESULTS/ERRNOS (kernel-internal restart errnos not counted) */
static int count_result(const struct ctx *x, PyObject *e, long long rval)
{
    if (-4096 < rval && rval < 0) {
        PyObject *en = PyLong_FromLongLong(-rval);
        if (en == NULL)
            return -1;
        int restarted = PySet_Contains(x->restart, en);
        int r = restarted < 0 ? -1
                : restarted ? 0 : (incr(e, RESULTS, NULL) < 0 || count_key(PyList_GET_ITEM(e, ERRNOS), en) < 0) ? -1 : 0;
        Py_DECREF(en);
        return r;
    }
    return incr(e, RESULTS, NULL) < 0 || incr(e, OK, NULL) < 0 ? -1 : 0;
}

/* _x_open's common case, decided before anything changes: the opened file's path (readlink /proc/PID/fd/RVAL,
 * absolute, not " (deleted)") for a task whose root is ours ("/" in roots), with the access kinds of its
 * (flags, created) known (open_access). *path: a new reference, or NULL when nothing is to be recorded (a
 * failed open, a failed readlink, a pipe/socket/anon inode); *access borrowed. */
static int open_result(const struct ctx *x, pid_t pid, PyObject *pidobj, long long rval, PyObject **path,
                       PyObject **access)
{
    *path = *access = NULL;
    if (rval < 0)
        return DONE;
    char link[64], buf[4097];
    snprintf(link, sizeof link, "/proc/%d/fd/%lld", (int)pid, rval);
    ssize_t n = readlink(link, buf, 4096);   /* os.readlink's buffer (MAXPATHLEN) */
    if (n <= 0 || buf[0] != '/')   /* os.readlink's str would not start with "/" either */
        return DONE;
    if (n >= 4096 || (n >= 10 && memcmp(buf + n - 10, " (deleted)", 10) == 0))
        return BACK;
    PyObject *root = PyDict_GetItemWithError(x->roots, pidobj);
    if (root == NULL || !PyUnicode_CheckExact(root) || PyUnicode_Compare(root, x->root_slash) != 0)
        return PyErr_Occurred() ? ERROR : BACK;
    PyObject *fe = PyDict_GetItemWithError(x->extra, pidobj);
    long long created = 0;
    PyObject *flags = NULL;
    if (fe != NULL) {
        if (!PyTuple_CheckExact(fe) || PyTuple_GET_SIZE(fe) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(fe, 0)))
            return BACK;
        flags = PyTuple_GET_ITEM(fe, 0);
        created = PyTuple_GET_ITEM(fe, 1) == Py_False;   /* existed is False */
    } else if (PyErr_Occurred())
        return ERROR;
    PyObject *key = flags ? Py_BuildValue("(OO)", flags, created ? Py_True : Py_False)
                          : Py_BuildValue("(iO)", 0, Py_False);
    if (key == NULL)
        return ERROR;
    PyObject *acc = PyDict_GetItemWithError(x->open_access, key);
    Py_DECREF(key);
    if (acc == NULL || !PyTuple_CheckExact(acc))
        return PyErr_Occurred() ? ERROR : BACK;
    *path = PyUnicode_DecodeFSDefaultAndSize(buf, n);   /* os.readlink's str */
    if (*path == NULL)
        return ERROR;
    *access = acc;
    return DONE;
}

/* A syscall-exit stop. */
static int exit_stop(const struct ctx *x, pid_t pid, PyObject *pidobj, const struct info *in)
{
    PyObject *e = in->op == INFO_EXIT ? PyDict_GetItemWithError(x->pending, pidobj) : NULL;
    if (!is_entry(e))
        return PyErr_Occurred() ? ERROR : BACK;
    PyObject *how = PyList_GET_ITEM(e, FAST);
    long fast = PyLong_CheckExact(how) ? PyLong_AsLong(how) : F_PYTHON;
    int is_open = F_OPEN <= fast && fast < F_OPEN + 6;
    if (!is_open && PyList_GET_ITEM(e, ON_EXIT) != Py_None)
        return BACK;
    PyObject *path = NULL, *access = NULL;
    if (is_open) {
        int r = open_result(x, pid, pidobj, in->rval, &path, &access);
        if (r != DONE)
            return r;
    }
    Py_INCREF(e);   /* held while pending lets go of it */
    int bad = PyDict_DelItem(x->pending, pidobj) < 0 || count_result(x, e, in->rval) < 0;
    if (!bad && is_open) {   /* _x_open: extra.pop(pid, ...); self.b.files[path] |= access */
        PyObject *fe = PyDict_GetItemWithError(x->extra, pidobj);
        bad = fe != NULL ? PyDict_DelItem(x->extra, pidobj) < 0 : PyErr_Occurred() != NULL;
        if (!bad && path != NULL) {
            PyObject *have = PyObject_GetItem(x->files, path);   /* a defaultdict(set): a new set if missing */
            bad = have == NULL;
            for (Py_ssize_t k = 0; !bad && k < PyTuple_GET_SIZE(access); k++)
                bad = PySet_Add(have, PyTuple_GET_ITEM(access, k)) < 0;   /* SystemError if not a set */
            Py_XDECREF(have);
        }
    }
    Py_XDECREF(path);
    Py_DECREF(e);
    return bad ? ERROR : DONE;
}

static PyObject *root_slash;   /* "/": a task's root that is ours (ptrace.py's roots) */

/* No other Python thread: waitpid need not release the GIL (releasing and taking it back costs every stop
 * ~0.2-0.4 us and a few cache lines). Another thread (the deferred-signal timer, a caller's) gets it released. */
static int alone(void)
{
    PyThreadState *ts = PyThreadState_Get();
    PyThreadState *head = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(ts));
    return head == ts && PyThreadState_Next(head) == NULL;
}

#define ANSWER(why, a, b) Py_BuildValue("(iiiL)", (why), (int)(a), (int)(b), *nsys)

static PyObject *loop(struct ctx *x, struct info *in, long long *nsys)
{
    for (;;) {
        int status;
        pid_t pid;
        if (PyErr_CheckSignals() < 0)   /* a signal that came while we were not waiting */
            return NULL;
        for (;;) {
            if (alone())
                pid = waitpid(-1, &status, WALL);
            else {
                Py_BEGIN_ALLOW_THREADS
                pid = waitpid(-1, &status, WALL);
                Py_END_ALLOW_THREADS
            }
            if (pid >= 0)
                break;
            if (errno == ECHILD)
                return ANSWER(NONE, 0, 0);
            if (errno != EINTR)
                return PyErr_SetFromErrno(PyExc_OSError);
            if (PyErr_CheckSignals() < 0)   /* run the Python handlers (_on_signal); raise theirs */
                return NULL;
        }
        if (status != STATUS_SECCOMP && status != STATUS_SYSCALL)
            return ANSWER(WAITED, pid, status);
        if (pt(REQ_GET_SYSCALL_INFO, pid, sizeof *in, (unsigned long)in) == -1)
            return ANSWER(WAITED, pid, status);   /* Python asks again and learns why */

        if (pid != x->last || x->lastobj == NULL) {
            Py_XDECREF(x->lastobj);
            x->last = pid;
            if ((x->lastobj = PyLong_FromLong(pid)) == NULL)
                return NULL;
        }
        PyObject *pidobj = x->lastobj;
        long req = REQ_CONT;
        int r = status == STATUS_SYSCALL ? exit_stop(x, pid, pidobj, in) : entry_stop(x, pidobj, in, &req);
        if (r == ERROR)
            return NULL;
        if (r == BACK)
            return ANSWER(INFO, pid, status);
        if (status == STATUS_SYSCALL) {
            if (pt(REQ_CONT, pid, 0, 0) == -1)
                return ANSWER(FAILED, pid, REQ_CONT);
            continue;
        }
        if (pt(req, pid, 0, 0) == -1) {
            ++*nsys;
            return ANSWER(FAILED, pid, req);   /* the tick (if due) waits for the next 1024 */
        }
        if (!(++*nsys & 1023))
            return ANSWER(TICK, 0, 0);
    }
}

/* run(info_address, tables, pending, native_audit, sample_first, restart_errnos, extra, roots, open_access,
 *     files, nsys) -> (why, pid, status_or_request, nsys) */
static PyObject *run(PyObject *self, PyObject *args)
{
    unsigned long long iaddr;
    long long nsys;
    struct ctx x = {.root_slash = root_slash, .last = -1, .lastobj = NULL};
    if (!PyArg_ParseTuple(args, "KO!O!kLO!O!O!O!O!L", &iaddr, &PyDict_Type, &x.tables, &PyDict_Type, &x.pending,
                          &x.native, &x.sample_first, &PyFrozenSet_Type, &x.restart, &PyDict_Type, &x.extra,
                          &PyDict_Type, &x.roots, &PyDict_Type, &x.open_access, &PyDict_Type, &x.files, &nsys))
        return NULL;
    PyObject *answer = loop(&x, (struct info *)(uintptr_t)iaddr, &nsys);
    Py_XDECREF(x.lastobj);
    return answer;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(info_address, tables, pending, native_audit, sample_first, restart_errnos, extra, roots, open_access, "
     "files, nsys) -> "
     "(why, pid, status_or_request, nsys): handle the common ptrace stops until one needs Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ptloop", "The ptrace backend's common stops in C (see _ptloop.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__ptloop(void)
{
    if (root_slash == NULL && (root_slash = PyUnicode_InternFromString("/")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* PROTOCOL: run()'s arguments and answers; ptrace.py uses a module built from another version of this
     * file (a stale editable build) only if it speaks the same */
    if (PyModule_AddIntConstant(m, "PROTOCOL", 2) < 0
        || PyModule_AddIntConstant(m, "N_SLOTS", N_SLOTS) < 0 || PyModule_AddIntConstant(m, "F_PLAIN", F_PLAIN) < 0
        || PyModule_AddIntConstant(m, "F_NORESULT", F_NORESULT) < 0 || PyModule_AddIntConstant(m, "F_ARGS", F_ARGS) < 0
        || PyModule_AddIntConstant(m, "F_OPEN", F_OPEN) < 0
        || PyModule_AddIntConstant(m, "INFO_SIZE", sizeof(struct info)) < 0
        || PyModule_AddIntConstant(m, "WAITED", WAITED) < 0 || PyModule_AddIntConstant(m, "INFO", INFO) < 0
        || PyModule_AddIntConstant(m, "FAILED", FAILED) < 0 || PyModule_AddIntConstant(m, "TICK", TICK) < 0
        || PyModule_AddIntConstant(m, "NONE", NONE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
