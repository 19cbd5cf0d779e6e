/* _taskflow_native: the inotify calls the stdlib lacks, built into the static
 * taskflow-agent (and only there). Two functions and the constants _wait.py uses. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sys/inotify.h>

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

static PyMethodDef native_methods[] = {
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
        PyModule_AddIntConstant(m, "IN_CLOSE_WRITE", IN_CLOSE_WRITE) < 0 ||
        PyModule_AddIntConstant(m, "IN_MOVED_TO", IN_MOVED_TO) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
