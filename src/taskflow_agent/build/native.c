/* _taskflow_native: what the stdlib lacks, built into the static taskflow-agent (and only
 * there): inotify, and a wait for a descriptor *or* a signal. Three functions and the
 * constants _wait.py uses.
 *
 * The agent keeps its signals blocked and takes them with sigtimedwait (_signals.py); a
 * wait for a descriptor needs them too. wait() unblocks them only around its poll, with a
 * handler that only writes the signal's number to a pipe that the poll also watches (the
 * self-pipe): a signal that was pending, or comes before, during or just after the poll,
 * is in the pipe, read once they are blocked again. No race, no thread, nothing lost.
 * (Not ppoll's atomic mask: qemu-user 7.2 never wakes ppoll for a signal that came while it
 * was blocked, and the arm64 agent is tested under qemu. A reader thread waking the main
 * thread with SIGUSR1 hung there too, and now and then lost a burst of signals.) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static int wake[2] = {-1, -1};

static void
on_signal(int signum)
{
    int saved = errno;
    unsigned char b = (unsigned char)signum;
    ssize_t n = write(wake[1], &b, 1); /* full pipe: an earlier signal already wakes us */
    (void)n;
    errno = saved;
}

static PyObject *
native_inotify_init1(PyObject *self, PyObject *arg)
{
    long flags = PyLong_AsLong(arg);
    if (flags == -1 && PyErr_Occurred())
        return NULL;
    int fd = inotify_init1((int)flags);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

static PyObject *
native_inotify_add_watch(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *path;
    unsigned int mask;
    if (!PyArg_ParseTuple(args, "iO&I", &fd, PyUnicode_FSConverter, &path, &mask))
        return NULL;
    int wd = inotify_add_watch(fd, PyBytes_AS_STRING(path), mask);
    if (wd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    return PyLong_FromLong(wd);
}

/* wait(fd, timeout_ms, signals) -> the signal that came, or 0 when fd became readable or
 * the timeout (-1: none) passed. The signals are blocked before and after the call. */
static PyObject *
native_wait(PyObject *self, PyObject *args)
{
    int fd, timeout_ms;
    PyObject *signals;
    if (!PyArg_ParseTuple(args, "iiO", &fd, &timeout_ms, &signals))
        return NULL;
    if (wake[0] < 0 && pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *seq = PySequence_Fast(signals, "signals must be a sequence of numbers");
    if (seq == NULL)
        return NULL;
    sigset_t set;
    sigemptyset(&set);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long signum = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (signum == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        if (sigaction((int)signum, &sa, NULL) != 0) {
            Py_DECREF(seq);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        sigaddset(&set, (int)signum);
    }
    Py_DECREF(seq);
    struct pollfd pfd[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    int r = poll(pfd, 2, timeout_ms);
    int saved = errno;
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    unsigned char b;
    if (read(wake[0], &b, 1) == 1)
        return PyLong_FromLong(b);
    if (r < 0 && saved != EINTR) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(0);
}

static PyMethodDef native_methods[] = {
    {"wait", native_wait, METH_VARARGS,
     "wait(fd, timeout_ms, signals) -> signal number, or 0 (fd readable or timeout)"},
    {"inotify_init1", native_inotify_init1, METH_O, "inotify_init1(flags) -> fd"},
    {"inotify_add_watch", native_inotify_add_watch, METH_VARARGS,
     "inotify_add_watch(fd, path, mask) -> watch descriptor"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_taskflow_native", NULL, -1, native_methods,
};

PyMODINIT_FUNC
PyInit__taskflow_native(void)
{
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "IN_CLOEXEC", IN_CLOEXEC) < 0 ||
        PyModule_AddIntConstant(m, "IN_NONBLOCK", IN_NONBLOCK) < 0 ||
        PyModule_AddIntConstant(m, "IN_CLOSE_WRITE", IN_CLOSE_WRITE) < 0 ||
        PyModule_AddIntConstant(m, "IN_CLOSE_NOWRITE", IN_CLOSE_NOWRITE) < 0 ||
        PyModule_AddIntConstant(m, "IN_MOVED_TO", IN_MOVED_TO) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
