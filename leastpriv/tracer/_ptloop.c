/* leastpriv.tracer._ptloop: the common stops of the ptrace backend's hot loop, in C.
 *
 * A twin of the first half of ptrace.py's _Session._loop, working on the same Python
 * objects (tables, entry lists, pending dict, the ctypes SyscallInfo struct). It handles:
 *   - a seccomp stop of a known task whose entry exists and has no ON_ENTRY handler:
 *     count it, then PTRACE_SYSCALL + pending[tid] = entry when the call is sampled
 *     (c <= sample_first or no success yet or c a power of two), else PTRACE_CONT;
 *   - a syscall-exit stop of a pending entry without ON_EXIT: count the result
 *     (OK, or ERRNOS[errno], kernel-internal restart errnos not counted), PTRACE_CONT.
 * Every other stop goes back to Python, which handles it as the pure-Python loop does:
 *   (WAITED, pid, status)   only waitpid was done (any other stop, or GET_SYSCALL_INFO failed);
 *   (INFO, pid, status)     info holds this stop's PTRACE_GET_SYSCALL_INFO; nothing was changed;
 *   (FAILED, pid, request)  the stop was handled but resuming it failed (Python learns errno);
 *   (TICK, 0, 0)            another 1024 syscalls counted (progress);
 *   (NONE, 0, 0)            no tracee left (ECHILD).
 * The last element of every answer is the running syscall count, handed back at the next call.
 * Nothing is changed before it is certain that the stop is a common one, so that Python never
 * sees half a stop. waitpid releases the GIL (the deferred-signal timer thread runs meanwhile);
 * Python signal handlers run before each wait and when it is interrupted, and their exception
 * is raised from here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
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

/* entry list slots: ptrace.py's COUNT, RESULTS, OK, ERRNOS, NAME, ON_ENTRY, ON_EXIT, ... (10 slots) */
enum { COUNT, RESULTS, OK, ERRNOS, NAME, ON_ENTRY, ON_EXIT, N_SLOTS = 10 };
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

/* d[key] = d.get(key, 0) + 1 */
static int count_in(PyObject *d, long long key)
{
    PyObject *k = PyLong_FromLongLong(key);
    if (k == NULL)
        return -1;
    PyObject *old = PyDict_GetItemWithError(d, k);   /* borrowed */
    long long v = 0;
    if (old != NULL) {
        v = PyLong_AsLongLong(old);
        if (v == -1 && PyErr_Occurred())
            goto fail;
    } else if (PyErr_Occurred())
        goto fail;
    PyObject *n = PyLong_FromLongLong(v + 1);
    if (n == NULL)
        goto fail;
    int r = PyDict_SetItem(d, k, n);
    Py_DECREF(n);
    Py_DECREF(k);
    return r;
fail:
    Py_DECREF(k);
    return -1;
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

#define ANSWER(why, a, b) Py_BuildValue("(iiiL)", (why), (int)(a), (int)(b), nsys)

/* run(info_address, tables, pending, native_audit, sample_first, restart_errnos, nsys)
 *   -> (why, pid, status_or_request, nsys) */
static PyObject *run(PyObject *self, PyObject *args)
{
    unsigned long long iaddr;
    unsigned long native;
    long long sample_first, nsys;
    PyObject *tables, *pending, *restart;
    if (!PyArg_ParseTuple(args, "KO!O!kLO!L", &iaddr, &PyDict_Type, &tables, &PyDict_Type, &pending, &native,
                          &sample_first, &PyFrozenSet_Type, &restart, &nsys))
        return NULL;
    struct info *in = (struct info *)(uintptr_t)iaddr;

    for (;;) {
        int status;
        pid_t pid;
        if (PyErr_CheckSignals() < 0)   /* a signal that came while we were not waiting */
            return NULL;
        for (;;) {
            Py_BEGIN_ALLOW_THREADS
            pid = waitpid(-1, &status, WALL);
            Py_END_ALLOW_THREADS
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

        PyObject *pidobj = PyLong_FromLong(pid);
        if (pidobj == NULL)
            return NULL;
        long req;
        if (status == STATUS_SYSCALL) {
            /* exit stop of a sampled call: pending.pop(pid), count its result, resume */
            PyObject *e = in->op == INFO_EXIT ? PyDict_GetItemWithError(pending, pidobj) : NULL;
            if (!is_entry(e) || PyList_GET_ITEM(e, ON_EXIT) != Py_None) {
                Py_DECREF(pidobj);
                if (PyErr_Occurred())
                    return NULL;
                return ANSWER(INFO, pid, status);
            }
            Py_INCREF(e);   /* held while pending lets go of it */
            int bad = PyDict_DelItem(pending, pidobj) < 0;
            long long rval = in->rval;
            if (!bad && -4096 < rval && rval < 0) {
                PyObject *en = PyLong_FromLongLong(-rval);
                int restarted = en == NULL ? -1 : PySet_Contains(restart, en);
                Py_XDECREF(en);
                bad = restarted < 0
                      || (!restarted && (incr(e, RESULTS, NULL) < 0
                                         || count_in(PyList_GET_ITEM(e, ERRNOS), -rval) < 0));
            } else if (!bad) {
                bad = incr(e, RESULTS, NULL) < 0 || incr(e, OK, NULL) < 0;
            }
            Py_DECREF(e);
            Py_DECREF(pidobj);
            if (bad)
                return NULL;
            if (pt(REQ_CONT, pid, 0, 0) == -1)
                return ANSWER(FAILED, pid, REQ_CONT);
            continue;
        }

        /* seccomp stop: the entry of a known task, without an entry handler */
        PyObject *e = entry_of(tables, pidobj, in, native);
        if (e == NULL || PyList_GET_ITEM(e, ON_ENTRY) != Py_None) {
            Py_DECREF(pidobj);
            if (PyErr_Occurred())
                return NULL;
            return ANSWER(INFO, pid, status);
        }
        long long c;
        int ok = PyObject_IsTrue(PyList_GET_ITEM(e, OK));   /* an int: no Python code runs */
        if (ok < 0 || incr(e, COUNT, &c) < 0) {
            Py_DECREF(pidobj);
            return NULL;
        }
        if (c <= sample_first || !ok || !(c & (c - 1))) {   /* sampled: see its result */
            int r = PyDict_SetItem(pending, pidobj, e);
            Py_DECREF(pidobj);
            if (r < 0)
                return NULL;
            req = REQ_SYSCALL;
        } else {
            Py_DECREF(pidobj);
            req = REQ_CONT;
        }
        if (pt(req, pid, 0, 0) == -1) {
            nsys++;
            return ANSWER(FAILED, pid, req);   /* the tick (if due) waits for the next 1024 */
        }
        if (!(++nsys & 1023))
            return ANSWER(TICK, 0, 0);
    }
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(info_address, tables, pending, native_audit, sample_first, restart_errnos, nsys) -> "
     "(why, pid, status_or_request, nsys): handle the common ptrace stops until one needs Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ptloop", "The ptrace backend's common stops in C (see _ptloop.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__ptloop(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* PROTOCOL: run()'s arguments and answers; ptrace.py uses a module built from another version of this
     * file (a stale editable build) only if it speaks the same */
    if (PyModule_AddIntConstant(m, "PROTOCOL", 1) < 0
        || PyModule_AddIntConstant(m, "INFO_SIZE", sizeof(struct info)) < 0
        || PyModule_AddIntConstant(m, "WAITED", WAITED) < 0 || PyModule_AddIntConstant(m, "INFO", INFO) < 0
        || PyModule_AddIntConstant(m, "FAILED", FAILED) < 0 || PyModule_AddIntConstant(m, "TICK", TICK) < 0
        || PyModule_AddIntConstant(m, "NONE", NONE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
